-- The example shop database the compose stack's pipelines read
-- (examples/compose/pipelines). Runs once, when the volume is new.
CREATE DATABASE shop;
\connect shop

CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    city       text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount      numeric(12, 2) NOT NULL,
    ordered_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customers (id, name, city) VALUES
    (1, 'Ada Lovelace', 'London'),
    (2, 'Grace Hopper', 'New York'),
    (3, 'Edsger Dijkstra', 'Rotterdam');

INSERT INTO orders (id, customer_id, amount) VALUES
    (1, 1, 19.99),
    (2, 1, 5.00),
    (3, 2, 120.50),
    (4, 3, 42.00);
