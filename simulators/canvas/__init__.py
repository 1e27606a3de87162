"""The simulated Canvas LMS: its model (courses, enrolments, work, modules, a lagging
replica) and the REST v1 request handlers over it."""
