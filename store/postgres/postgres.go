// Package postgres is the store backend for several app instances sharing
// one PostgreSQL database, through pgx's database/sql driver.
//
// Token writes are single compare-and-swap UPDATE statements, and
// WithPortalLock / WithSessionLock hold a row lock across processes, so
// instances can share portals and sessions without losing a refresh.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/sqldb"
)

// migrations holds the schema, one numbered file per step ("0001_init.sql"),
// applied in order and recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the pg_advisory_xact_lock key that serializes schema
// migrations between instances starting at the same time ("leadcont").
const migrationLockKey int64 = 0x6c656164636f6e74

// Store is the PostgreSQL backend of store.Store: the shared
// implementation (store/sqldb) in the PostgreSQL dialect. It is safe for
// concurrent use by many goroutines and many processes.
type Store = sqldb.Store

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx accepts; tables go to the first schema of the
// search_path) and brings the schema up to date. keys seals every token
// written and opens every token read.
func Open(ctx context.Context, url string, keys *secret.Keyring) (*Store, error) {
	if keys == nil {
		return nil, errors.New("store: open postgres: nil keyring")
	}
	// Errors below never quote url: it may carry a password.
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return sqldb.New(db, keys, sqldb.PostgreSQL), nil
}

// migrate applies the embedded migrations that schema_migrations does not
// list yet, in one transaction holding an advisory lock: instances that
// start together queue there, and each later one finds nothing to do.
func migrate(ctx context.Context, db *sql.DB) error {
	steps, err := store.LoadMigrations(migrations)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("store: migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     NOT NULL PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	// No arguments: pgx sends each step with the simple protocol, which
	// runs a file of several statements.
	if err := store.ApplyMigrations(ctx, tx, steps, func(m store.Migration) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		return err
	}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}
