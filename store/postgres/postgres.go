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
	"github.com/b24apps/leadcontacts/store/sqldb"
)

// migrations holds the schema, one numbered file per step ("0001_init.sql"),
// applied in order and recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrations embed.FS

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
	if err := sqldb.Migrate(ctx, db, migrations, sqldb.PostgreSQL); err != nil {
		_ = db.Close()
		return nil, err
	}
	return sqldb.New(db, keys, sqldb.PostgreSQL), nil
}
