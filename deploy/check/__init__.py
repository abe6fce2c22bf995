"""scripts/check-deploy's checks of deploy/ and docker-compose.yml, offline."""
