-- Features a real schema has that the realistic one lacks (issue 14): foreign keys declared on
-- partitions, a materialized view, grants and another owner, bytea images, credentials,
-- empty strings, a date of birth by name, domains, enums and arrays. Written for the tests.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
        CREATE ROLE reporting;
    END IF;
END $$;

CREATE DOMAIN year AS integer CHECK (VALUE BETWEEN 1901 AND 2155);
CREATE TYPE rating AS ENUM ('G', 'PG', 'R');

CREATE TABLE city (city_id serial PRIMARY KEY, city text NOT NULL);
CREATE TABLE address (
    address_id serial PRIMARY KEY, address text NOT NULL, address2 text, district text,
    city_id int NOT NULL REFERENCES city, postal_code text, phone varchar(24) NOT NULL);
CREATE TABLE customer (
    customer_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
    email text UNIQUE, address_id int NOT NULL REFERENCES address, born_on date,
    active boolean NOT NULL DEFAULT true, signup_ip inet);
CREATE TABLE staff (
    staff_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
    address_id int NOT NULL REFERENCES address, username varchar(40) NOT NULL UNIQUE,
    password varchar(40), picture bytea, api_token text);
CREATE TABLE film (
    film_id serial PRIMARY KEY, title text NOT NULL, release_year year, rating rating,
    special_features text[], fulltext tsvector);
CREATE TABLE payment (
    payment_id serial, customer_id int NOT NULL, staff_id int NOT NULL,
    amount numeric(5, 2) NOT NULL, payment_date timestamptz NOT NULL,
    PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022_01 PARTITION OF payment
    FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2022_02 PARTITION OF payment
    FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
-- As Pagila does: the foreign keys live on the partitions, not on the partitioned table.
ALTER TABLE payment_p2022_01 ADD CONSTRAINT payment_p2022_01_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customer (customer_id);
ALTER TABLE payment_p2022_01 ADD CONSTRAINT payment_p2022_01_staff_id_fkey
    FOREIGN KEY (staff_id) REFERENCES staff (staff_id);
ALTER TABLE payment_p2022_02 ADD CONSTRAINT payment_p2022_02_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customer (customer_id);
ALTER TABLE payment_p2022_02 ADD CONSTRAINT payment_p2022_02_staff_id_fkey
    FOREIGN KEY (staff_id) REFERENCES staff (staff_id);
CREATE TABLE account (account_id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE message (message_id serial PRIMARY KEY, body text NOT NULL);

INSERT INTO city (city) SELECT 'City ' || g FROM generate_series(1, 20) g;
INSERT INTO address (address, address2, district, city_id, postal_code, phone)
SELECT g || ' Real Street', CASE WHEN g % 3 = 0 THEN 'Flat ' || g ELSE '' END, 'District',
       1 + g % 20, lpad((10000 + g * 7)::text, 5, '0'),
       '+1 415 ' || lpad((g * 7919 % 10000000)::text, 7, '0')
FROM generate_series(1, 600) g;
INSERT INTO customer (first_name, last_name, email, address_id, born_on, signup_ip)
SELECT (ARRAY['Mary','Patricia','Linda','Barbara','Elizabeth'])[1 + g % 5],
       (ARRAY['Smith','Jones','Brown','Taylor'])[1 + g % 4],
       'customer' || g || '@mail.test', 1 + g % 600, date '1950-01-01' + g * 37 % 18000,
       ('81.2.' || (g / 250) || '.' || (g % 250 + 1))::inet
FROM generate_series(1, 500) g;
INSERT INTO staff (first_name, last_name, address_id, username, password, picture, api_token)
SELECT 'Mike' || g, 'Hillyer', g, 'mike' || g, md5('secret' || g) || 'abcdefgh',
       decode('89504e470d0a1a0a0000000d49484452' || md5(g::text), 'hex'),
       'tok_' || md5('token' || g)
FROM generate_series(1, 4) g;
INSERT INTO film (title, release_year, rating, special_features, fulltext)
SELECT 'Film ' || g, 2000 + g % 20, (ARRAY['G','PG','R']::rating[])[1 + g % 3],
       ARRAY['Trailers', 'Deleted Scenes'], to_tsvector('english', 'an epic film ' || g)
FROM generate_series(1, 50) g;
INSERT INTO payment (customer_id, staff_id, amount, payment_date)
SELECT 1 + g % 500, 1 + g % 4, (g % 1000) / 100.0,
       timestamptz '2022-01-01' + (g % 55) * interval '1 day' + g * interval '1 second'
FROM generate_series(1, 4000) g;
INSERT INTO account (email) SELECT 'person' || g || '@corp.test' FROM generate_series(1, 300) g;
INSERT INTO message (body)
SELECT 'Contact person' || g || '@corp.test about card 4111 1111 1111 1111 or call '
       || '+1 415 555 ' || lpad(g::text, 4, '0') || '; account 1234567890123 noted.'
FROM generate_series(1, 300) g;

CREATE MATERIALIZED VIEW customer_totals AS
    SELECT customer_id, sum(amount) AS total, count(*) AS payments FROM payment
    GROUP BY customer_id;
CREATE VIEW active_customers AS SELECT customer_id, email FROM customer WHERE active;
GRANT SELECT ON customer, payment, customer_totals TO reporting;
ALTER TABLE film OWNER TO reporting;
ANALYZE;
