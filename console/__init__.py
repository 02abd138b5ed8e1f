"""The web console (issue 15): an aiohttp sub-app reading and acting through `common` only."""
