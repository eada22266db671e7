package postgres

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// schemaURL gives each test its own fresh schema, dropped when the test
// ends, reached through a URL whose search_path points at it, so tests and
// packages running in parallel never see each other's tables.
var schemaURL = storetest.PerTest(func(t *testing.T) string { return storetest.FreshSchema(t, "storetest_") })

// rawDB is a plain connection to the test's schema, bypassing the store.
func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", schemaURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// backend is PostgreSQL as the shared suites see it; its locks are row
// locks, held across instances.
var backend = storetest.Backend{
	Database: schemaURL,
	Open: func(ctx context.Context, dsn string, keys *secret.Keyring) (store.Store, error) {
		return Open(ctx, dsn, keys)
	},
	Migrations: migrations,
	Raw:        rawDB,
	// Every row of every table in the test's schema, as text: what a
	// pg_dump or a leaked backup would show.
	Dump: func(t *testing.T) []byte {
		db := rawDB(t)
		ctx := t.Context()
		rows, err := db.QueryContext(ctx, `
			SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
		require.NoError(t, err)
		var tables []string
		for rows.Next() {
			var name string
			require.NoError(t, rows.Scan(&name))
			tables = append(tables, name)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Contains(t, tables, "portals")
		require.Contains(t, tables, "sessions")

		var dump []byte
		for _, table := range tables {
			var text string
			require.NoError(t, db.QueryRowContext(ctx,
				`SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+pgx.Identifier{table}.Sanitize()+` t`,
			).Scan(&text))
			dump = append(dump, table+"\n"+text+"\n"...)
		}
		return dump
	},
	SharedLocks: true,
}

func TestStore(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, backend)
}

// A failed statement inside the lock aborts the transaction; the caller
// must learn that fn's earlier writes were lost.
func TestLockAbortedTransaction(t *testing.T) {
	t.Parallel()
	s := storetest.MustOpen(t, Open, backend.Database(t), storetest.Keys(t, "current"))
	ctx := t.Context()
	p := &store.Portal{MemberID: "m-abort", AccessToken: secret.New("a0"), RefreshToken: secret.New("r0")}
	require.NoError(t, s.SavePortal(ctx, p))
	sess := &store.Session{ID: "sess-dup", MemberID: "m-abort", ExpiresAt: time.Now().Add(time.Hour)}
	require.NoError(t, s.CreateSession(ctx, sess))

	err := s.WithPortalLock(ctx, "m-abort", func(ctx context.Context) error {
		if err := s.UpdatePortalTokens(ctx, "m-abort", p.Version, secret.New("a1"), secret.New("r1"), time.Now()); err != nil {
			return err
		}
		dup := *sess
		if err := s.CreateSession(ctx, &dup); err == nil {
			return errors.New("duplicate session id accepted")
		}
		return nil // fn ignores the failure; the commit must not
	})
	require.ErrorIs(t, err, pgx.ErrTxCommitRollback)
	require.ErrorContains(t, err, "store: lock portal")
	got, err := s.Portal(ctx, "m-abort")
	require.NoError(t, err)
	require.Equal(t, "r0", got.RefreshToken.Reveal(), "write of an aborted lock transaction persisted")
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := Open(t.Context(), storetest.PostgresURL(t), nil)
	require.ErrorContains(t, err, "nil keyring")

	// Nothing listens on port 1. The password must not show in the error.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://app:PASSWORD-SENTINEL@127.0.0.1:1/app?sslmode=disable&connect_timeout=5", storetest.Keys(t, "current"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "store: open postgres")
	require.NotContains(t, err.Error(), "PASSWORD-SENTINEL")
}
