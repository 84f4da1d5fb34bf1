-- The metadata of the user's last verified token (issue 18), kept apart from `meta`, which
-- `PATCH /sdk/me` may also change: with PARA_PERMISSIONS_METADATA=token, workflow
-- permissions read only this. NULL: no token with metadata seen yet ({}).
ALTER TABLE connected_users ADD COLUMN signed_meta TEXT;
