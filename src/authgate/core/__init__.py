"""What every feature uses: database, errors, security primitives, store, email, logging."""
