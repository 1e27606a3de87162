"""The simulated Canvas Credentials (Badgr): its model (issuers, badge classes, assertions,
groups) and the v2 request handlers over it."""
