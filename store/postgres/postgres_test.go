package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// baseURL returns TEST_DATABASE_URL. Without it the tests skip, except in
// CI, which must never skip them.
func baseURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_DATABASE_URL is not set; CI must run the PostgreSQL store tests")
		}
		t.Skip("TEST_DATABASE_URL is not set; skipping PostgreSQL store tests " +
			"(e.g. TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable')")
	}
	return u
}

// schemaURL gives each test its own fresh schema, dropped when the test
// ends, and returns a connection URL whose search_path points at it, so
// tests and packages running in parallel never see each other's tables.
var schemaURL = storetest.PerTest(func(t *testing.T) string {
	base := baseURL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "storetest_" + hex.EncodeToString(b)

	admin(t, base, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { admin(t, base, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	return withSearchPath(t, base, schema)
})

// admin runs one statement on its own short-lived connection.
func admin(t *testing.T, dsn, query string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	// Not t.Context(): cleanups run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, query)
	require.NoError(t, err)
}

// withSearchPath adds search_path, which pgx sends as a run-time parameter
// at connection start, to a URL or key=value connection string.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func openTest(t *testing.T, keys *secret.Keyring) *Store {
	t.Helper()
	s, err := Open(t.Context(), schemaURL(t), keys)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB is a plain connection to the test's schema, bypassing the store.
func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", schemaURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

var atRest = storetest.AtRest{
	Open: func(t *testing.T, keys *secret.Keyring) store.Store { return openTest(t, keys) },
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
	Exec: func(t *testing.T, query string) {
		_, err := rawDB(t).ExecContext(t.Context(), query)
		require.NoError(t, err)
	},
}

func TestStore(t *testing.T) {
	baseURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, storetest.Keys(t, "current")) })
}

func TestAtRest(t *testing.T) {
	baseURL(t)
	storetest.RunAtRest(t, atRest)
}

// Instances starting together must not race on the schema: the advisory
// lock makes one migrate and the others find the work done.
func TestMigrationsRunOnce(t *testing.T) {
	t.Parallel()
	keys := storetest.Keys(t, "current")
	dsn := schemaURL(t)
	storetest.RunMigrations(t, migrations, 5, func() error {
		s, err := Open(t.Context(), dsn, keys)
		if err == nil {
			err = s.Close()
		}
		return err
	}, func(t *testing.T) (int, int) {
		var count, highest int
		require.NoError(t, rawDB(t).QueryRowContext(t.Context(),
			`SELECT count(*), max(version) FROM schema_migrations`).Scan(&count, &highest))
		return count, highest
	})
}

// The point of the PostgreSQL locks: two instances (two Store values with
// their own pools) on one database take turns.
func TestLocksAcrossInstances(t *testing.T) {
	t.Parallel()
	keys := storetest.Keys(t, "current")
	a, b := openTest(t, keys), openTest(t, keys)
	ctx := t.Context()
	p := &store.Portal{MemberID: "m-shared", AccessToken: secret.New("a0"), RefreshToken: secret.New("r0")}
	require.NoError(t, a.SavePortal(ctx, p))
	require.NoError(t, a.CreateSession(ctx, &store.Session{
		ID: "sess-shared", MemberID: "m-shared", ExpiresAt: time.Now().Add(time.Hour),
	}))

	t.Run("portal", func(t *testing.T) {
		storetest.RequireSerializes(t,
			func(ctx context.Context, fn func(context.Context) error) error {
				return a.WithPortalLock(ctx, "m-shared", fn)
			},
			func(ctx context.Context, fn func(context.Context) error) error {
				return b.WithPortalLock(ctx, "m-shared", fn)
			},
			func(ctx context.Context) error {
				return a.UpdatePortalTokens(ctx, "m-shared", p.Version, secret.New("a1"), secret.New("r1"), time.Now())
			},
			func(ctx context.Context) error {
				got, err := b.Portal(ctx, "m-shared")
				if err == nil && got.RefreshToken.Reveal() != "r1" {
					t.Error("second instance did not see the first one's refresh")
				}
				return err
			})
	})
	t.Run("session", func(t *testing.T) {
		storetest.RequireSerializes(t,
			func(ctx context.Context, fn func(context.Context) error) error {
				return a.WithSessionLock(ctx, "sess-shared", fn)
			},
			func(ctx context.Context, fn func(context.Context) error) error {
				return b.WithSessionLock(ctx, "sess-shared", fn)
			},
			func(ctx context.Context) error {
				return a.UpdateSessionTokens(ctx, "sess-shared", 1, secret.New("a1"), secret.New("r1"))
			},
			func(ctx context.Context) error {
				got, err := b.Session(ctx, "sess-shared", time.Now())
				if err == nil && got.TokenVersion != 2 {
					t.Error("second instance did not see the first one's refresh")
				}
				return err
			})
	})
}

// A failed statement inside the lock aborts the transaction; the caller
// must learn that fn's earlier writes were lost.
func TestLockAbortedTransaction(t *testing.T) {
	t.Parallel()
	s := openTest(t, storetest.Keys(t, "current"))
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
	_, err := Open(t.Context(), baseURL(t), nil)
	require.ErrorContains(t, err, "nil keyring")

	// Nothing listens on port 1. The password must not show in the error.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://app:PASSWORD-SENTINEL@127.0.0.1:1/app?sslmode=disable&connect_timeout=5", storetest.Keys(t, "current"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "store: open postgres")
	require.NotContains(t, err.Error(), "PASSWORD-SENTINEL")
}
