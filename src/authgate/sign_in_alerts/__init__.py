"""New sign-in alerts: mail the owner when a sign-in comes from an unfamiliar IP + User-Agent."""
