-- A small but realistic production-like database for the clone tests: several schemas,
-- a partitioned table, enum and domain types, generated and identity columns, self-referencing
-- and circular foreign keys, composite keys, jsonb and free text containing personal data.
CREATE SCHEMA crm;
CREATE SCHEMA sales;
CREATE SCHEMA hr;
CREATE TYPE crm.customer_tier AS ENUM ('free', 'pro', 'enterprise');
CREATE DOMAIN crm.email_address AS text CHECK (VALUE LIKE '%@%');

CREATE TABLE public.countries (code char(2) PRIMARY KEY, label text NOT NULL);
INSERT INTO public.countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('GB', 'United Kingdom'),
    ('US', 'United States'), ('NL', 'Netherlands');

CREATE TABLE crm.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email crm.email_address NOT NULL UNIQUE,
    first_name text NOT NULL,
    last_name text NOT NULL,
    display_label text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED,
    phone varchar(32),
    birth_date date,
    tier crm.customer_tier NOT NULL DEFAULT 'free',
    national_id text,
    iban text,
    last_login_ip inet,
    country char(2) REFERENCES public.countries (code),
    profile jsonb,
    referred_by bigint REFERENCES crm.customers (id),
    created_at timestamptz NOT NULL DEFAULT '2024-01-01'
);
CREATE TABLE crm.accounts (
    id serial PRIMARY KEY,
    owner_id bigint NOT NULL REFERENCES crm.customers (id),
    kind text NOT NULL,
    balance numeric(12, 2) NOT NULL
);
-- circular: customers -> accounts -> customers
ALTER TABLE crm.customers ADD COLUMN primary_account_id int REFERENCES crm.accounts (id);

CREATE TABLE crm.tickets (
    id bigserial PRIMARY KEY,
    customer_email text NOT NULL REFERENCES crm.customers (email),
    subject text NOT NULL,
    body text NOT NULL
);

CREATE TABLE sales.orders (
    order_no int NOT NULL,
    ordered_at date NOT NULL,
    customer_id bigint NOT NULL REFERENCES crm.customers (id),
    total numeric(10, 2) NOT NULL,
    shipping_address text,
    contact_email text,
    PRIMARY KEY (order_no, ordered_at)
) PARTITION BY RANGE (ordered_at);
CREATE TABLE sales.orders_2024 PARTITION OF sales.orders
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE sales.orders_2025 PARTITION OF sales.orders
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.order_lines (
    order_no int NOT NULL,
    ordered_at date NOT NULL,
    line_no int NOT NULL,
    product text NOT NULL,
    quantity int NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_no, ordered_at, line_no),
    FOREIGN KEY (order_no, ordered_at) REFERENCES sales.orders (order_no, ordered_at)
);
CREATE INDEX order_lines_product ON sales.order_lines (product);

CREATE TABLE hr.employees (
    id int PRIMARY KEY,
    manager_id int REFERENCES hr.employees (id),
    email text UNIQUE,
    full_name text NOT NULL,
    salary numeric(10, 2) NOT NULL
);

-- data ------------------------------------------------------------------------------------
CREATE TEMP TABLE names AS SELECT * FROM unnest(
    ARRAY['Olivia','Liam','Emma','Noah','Amelia','Oliver','Sophia','Elijah','Charlotte','James',
          'Mia','William','Harper','Lucas','Evelyn','Henry','Abigail','Theodore','Emily','Jack'],
    ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Rodriguez',
          'Martinez','Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas','Taylor',
          'Moore','Jackson','Martin']) WITH ORDINALITY AS n(first, last, i);

INSERT INTO crm.customers (email, first_name, last_name, phone, birth_date, tier, national_id,
                           iban, last_login_ip, country, profile, referred_by, created_at)
SELECT lower(f.first || '.' || l.last || g) || '@mailbox.test',
       f.first, l.last,
       '+1 415 555 ' || lpad((g % 10000)::text, 4, '0'),
       date '1950-01-01' + (g * 37 % 20000),
       (ARRAY['free','pro','enterprise']::crm.customer_tier[])[1 + g % 3],
       lpad((g * 7919 % 1000000000)::text, 9, '0'),
       'GB' || lpad((g % 97)::text, 2, '0') || 'WEST' || lpad((g * 131)::text, 14, '0'),
       ('192.168.' || (g / 250) || '.' || (g % 250 + 1))::inet,
       (ARRAY['DE','FR','GB','US','NL'])[1 + g % 5],
       jsonb_build_object('email', lower(f.first || '.' || l.last || g) || '@mailbox.test',
                          'phone', '+1 415 555 ' || lpad((g % 10000)::text, 4, '0'),
                          'newsletter', g % 2 = 0, 'tags', jsonb_build_array('a', 'b')),
       NULL, timestamptz '2024-01-01' + g * interval '1 hour'
FROM generate_series(1, 2000) g
JOIN names f ON f.i = 1 + g % 20
JOIN names l ON l.i = 1 + (g / 20) % 20;
UPDATE crm.customers SET referred_by = id - 1 WHERE id % 3 = 0;

INSERT INTO crm.accounts (owner_id, kind, balance)
SELECT id, (ARRAY['checking','savings'])[1 + id % 2], (id * 13.37) % 100000 FROM crm.customers;
UPDATE crm.customers c SET primary_account_id = a.id FROM crm.accounts a WHERE a.owner_id = c.id;

INSERT INTO crm.tickets (customer_email, subject, body)
SELECT c.email, 'Problem with order ' || c.id,
       'Hello, this is ' || c.first_name || ' ' || c.last_name || '. Please call me on '
       || c.phone || ' or write to ' || c.email || '. My IBAN is ' || c.iban || '. Thanks!'
FROM crm.customers c WHERE c.id % 2 = 0;

-- non-ASCII names, and free text with tabs, newlines and backslashes (COPY escapes)
UPDATE crm.customers SET first_name = 'Zoë', last_name = 'Müller-Łukasz' WHERE id = 7;
UPDATE crm.tickets SET body = E'Dear team,\n\tI am Zoë Müller (zoë@mailbox.test),\\ call me'
    || E' on +1 415 555 0007.\r\nRegards' WHERE id = (SELECT min(id) FROM crm.tickets);

INSERT INTO sales.orders (order_no, ordered_at, customer_id, total, shipping_address, contact_email)
SELECT g, date '2024-01-01' + (g % 700), 1 + g % 2000, (g % 500) + 0.99,
       (g % 900 + 1) || ' ' || l.last || ' Street, Springfield',
       c.email
FROM generate_series(1, 6000) g
JOIN names l ON l.i = 1 + g % 20
JOIN crm.customers c ON c.id = 1 + g % 2000;

INSERT INTO sales.order_lines (order_no, ordered_at, line_no, product, quantity)
SELECT o.order_no, o.ordered_at, n, 'product-' || (o.order_no * n % 300), 1 + n
FROM sales.orders o CROSS JOIN generate_series(1, 2) n;

INSERT INTO hr.employees (id, manager_id, email, full_name, salary)
SELECT g, CASE WHEN g > 1 THEN g / 2 END, 'staff' || g || '@corp.test',
       f.first || ' ' || l.last, 40000 + g * 150
FROM generate_series(1, 200) g
JOIN names f ON f.i = 1 + g % 20
JOIN names l ON l.i = 1 + (g * 7) % 20;
ANALYZE;
