-- The account a run acts with, when the trigger named one (`X-Paragon-Credential` on
-- `paragon.workflow()` / `paragon.event()` for a user with several accounts of an integration).
-- NULL: the user's newest valid credential of the integration, as before.
ALTER TABLE runs ADD COLUMN credential_id TEXT;
