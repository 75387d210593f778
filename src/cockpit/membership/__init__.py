"""Membership: the changes to who is in the organisation that reach beyond one domain's tables.

Each is one audited unit of work over several domains, calling each through its service (never its
tables): seats (held by people, reserved by pending invitations), a person's deactivation (their
sessions end) and reactivation, the PATCH of a person, a group's deletion (its people and invitations
move to Default, its access rules go) and a project's (its tokens stop working). The domains below
do not know this package: it sits above users, groups, invitations, projects, policies and auth.
"""
