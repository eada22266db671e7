package storetest

import (
	"io/fs"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/store"
)

// RunMigrations checks that instances starting together on a new database
// migrate it once. open opens and closes a store on the test's database;
// it is called from n goroutines at once (so it returns its error rather
// than failing t) and then once more on the up-to-date schema. versions
// returns the row count and the highest version of schema_migrations.
func RunMigrations(t *testing.T, migrations fs.FS, n int, open func() error, versions func(t *testing.T) (count, highest int)) {
	t.Helper()
	steps, err := store.LoadMigrations(migrations)
	require.NoError(t, err)
	require.NotEmpty(t, steps)

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Go(func() { errs[i] = open() })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	require.NoError(t, open())
	count, highest := versions(t)
	require.Equal(t, len(steps), count)
	require.Equal(t, steps[len(steps)-1].Version, highest)
}
