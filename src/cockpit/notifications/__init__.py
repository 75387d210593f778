"""Notifications (issue 16): templates per event and channel, in-app notifications (the bell),
e-mails sent by the job queue, each person's mutes, and budget thresholds."""
