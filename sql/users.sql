-- One tenant's users from the demo legacy table (pipeline/demo.py), every column as stored.
-- Runs unchanged on PostgreSQL, MariaDB and SQLite. :tenant is a bound parameter, never formatted in.
SELECT
    id,
    tenant_code,
    login,
    email,
    email_confirmed,
    phone,
    phone_confirmed,
    first_name,
    last_name,
    birth_date,
    locale,
    role,
    is_active,
    deleted_at,
    created_at,
    updated_at
FROM app_users
WHERE tenant_code = :tenant
ORDER BY id
