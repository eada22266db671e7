package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// dbPath gives each test its own database file, in a directory that does
// not exist yet so that every test also exercises its creation.
var dbPath = storetest.PerTest(func(t *testing.T) string {
	return filepath.Join(t.TempDir(), "data", "leadcontacts.db")
})

func openTest(t *testing.T, keys *secret.Keyring) *Store {
	t.Helper()
	return storetest.MustOpen(t, Open, dbPath(t), keys)
}

// backend is SQLite as the shared suites see it; its locks hold within one
// Store (one process).
var backend = storetest.Backend{
	Database: dbPath,
	Open: func(ctx context.Context, path string, keys *secret.Keyring) (store.Store, error) {
		return Open(ctx, path, keys)
	},
	Migrations: migrations,
	Raw: func(t *testing.T) *sql.DB {
		db, err := sql.Open("sqlite", dbPath(t)+"?_pragma=busy_timeout(5000)")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	},
	// The main file and the write-ahead log, where recent pages live until
	// a checkpoint copies them over.
	Dump: func(t *testing.T) []byte {
		var all []byte
		for _, suffix := range []string{"", "-wal", "-journal"} {
			b, err := os.ReadFile(dbPath(t) + suffix)
			if errors.Is(err, fs.ErrNotExist) && suffix != "" {
				continue
			}
			require.NoError(t, err)
			all = append(all, b...)
		}
		return all
	},
}

func TestStore(t *testing.T) {
	storetest.Run(t, backend)
}

func TestOpenConfiguresDatabase(t *testing.T) {
	s := openTest(t, storetest.Keys(t, "current"))
	ctx := t.Context()

	info, err := os.Stat(dbPath(t))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), info.Mode().Perm(), "database file readable by others")
	dir, err := os.Stat(filepath.Dir(dbPath(t)))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), dir.Mode().Perm())

	// Pragmas are per connection: check several pooled connections at once.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := s.DB().Conn(ctx)
		require.NoError(t, err)
		defer c.Close()
		conns[i] = c
	}
	for _, c := range conns {
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000"} {
			var got string
			require.NoError(t, c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got))
			require.Equal(t, want, got, pragma)
		}
	}
}

// Two Store values on one file stand in for two processes: their writes,
// including read-then-write transactions, must wait for each other rather
// than fail with SQLITE_BUSY.
func TestConcurrentWritersDoNotFail(t *testing.T) {
	keys := storetest.Keys(t, "current")
	a, b := openTest(t, keys), openTest(t, keys)
	ctx := t.Context()

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 20 {
		for j, s := range []*Store{a, b} {
			wg.Go(func() {
				memberID := fmt.Sprintf("m-%d", i%5)
				p := &store.Portal{MemberID: memberID, AccessToken: secret.New("a"), RefreshToken: secret.New("r")}
				if err := s.SavePortal(ctx, p); err != nil {
					errs <- err
					return
				}
				sess := &store.Session{ID: fmt.Sprintf("s-%d-%d", i, j), MemberID: memberID, ExpiresAt: time.Now().Add(time.Minute)}
				if err := s.CreateSession(ctx, sess); err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- err
				}
				if err := s.UninstallPortal(ctx, memberID, i%2 == 0, time.Now()); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestMemory(t *testing.T) {
	s, err := Open(t.Context(), ":memory:", storetest.Keys(t, "current"))
	require.NoError(t, err)
	defer s.Close()

	p := &store.Portal{MemberID: "m-mem", AccessToken: secret.New("a")}
	require.NoError(t, s.SavePortal(t.Context(), p))
	// Concurrent readers must all see the one database.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Portal(t.Context(), "m-mem")
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func TestOpenErrors(t *testing.T) {
	keys := storetest.Keys(t, "current")
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))

	for name, tc := range map[string]struct {
		path string
		keys *secret.Keyring
	}{
		"nil keyring":         {filepath.Join(t.TempDir(), "x.db"), nil},
		"empty path":          {"", keys},
		"question mark":       {filepath.Join(t.TempDir(), "x?.db"), keys},
		"parent is a file":    {filepath.Join(blocker, "x.db"), keys},
		"path is a directory": {t.TempDir(), keys},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path, tc.keys)
			require.Error(t, err)
			require.Nil(t, s)
			require.Contains(t, err.Error(), "store: open sqlite")
		})
	}
}
