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
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// migrations holds the schema, one numbered file per step ("0001_init.sql"),
// applied in order and recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the pg_advisory_xact_lock key that serializes schema
// migrations between instances starting at the same time ("leadcont").
const migrationLockKey int64 = 0x6c656164636f6e74

// Store is the PostgreSQL backend of store.Store. It is safe for concurrent
// use by many goroutines and many processes.
type Store struct {
	db   *sql.DB
	keys *secret.Keyring

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

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
	return &Store{db: db, keys: keys}, nil
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

// Close closes the connection pool. Later calls return the first call's
// result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txKey carries, in the context handed to a WithPortalLock or
// WithSessionLock callback, the transaction that holds the lock.
type txKey struct{ s *Store }

// q returns the lock transaction when ctx carries one of this store, so
// calls made inside a lock callback see and update the locked row instead
// of queueing behind their own lock; the pool otherwise.
func (s *Store) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		return tx
	}
	return s.db
}

// inTx runs fn in a transaction: the lock transaction when ctx carries one
// (which its owner commits), a new one otherwise.
func (s *Store) inTx(ctx context.Context, fn func(q querier) error) error {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		return fn(tx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// exists returns nil when query finds a row and store.ErrNotFound when not.
func exists(ctx context.Context, q querier, query string, args ...any) error {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// stored returns t as a round trip through timestamptz gives it back
// (microseconds, UTC), so values handed back to callers equal later reads.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// nullTime maps the zero time to NULL ("not set").
func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: stored(t), Valid: true}
}

func fromNullTime(v sql.NullTime) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// portalAAD and sessionAAD bind each ciphertext to its row and column.
// Both backends use the same strings, so a ciphertext means the same thing
// wherever it is stored.
func portalAAD(memberID, column string) string { return "portals|" + memberID + "|" + column }

func sessionAAD(lookup, column string) string { return "sessions|" + lookup + "|" + column }

var _ store.Locker = (*Store)(nil)
