package jobs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeBulk records the runs the engine works and lists stale ones.
type fakeBulk struct {
	mu     sync.Mutex
	stale  []int64
	worked map[int64]int
}

var _ Bulk = (*fakeBulk)(nil)

func (f *fakeBulk) WorkBulkRun(_ context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.worked == nil {
		f.worked = map[int64]int{}
	}
	f.worked[id]++
	f.stale = nil // worked: no longer stale
	return nil
}

func (f *fakeBulk) StaleBulkRuns(context.Context) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.stale...), nil
}

func (f *fakeBulk) times(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.worked[id]
}

// A run inserted as a job is worked; a stale run (a crash left it) is
// found by the leader's resume pass when it starts, and worked.
func TestBulkRunsAreWorkedAndResumed(t *testing.T) {
	forEach(t, func(t *testing.T, open func(Config) *Engine) {
		var p probe
		bulk := &fakeBulk{stale: []int64{7}}
		cfg := p.config("a")
		cfg.Bulk = bulk
		e := open(cfg)
		e.Start(t.Context())
		require.Eventually(t, func() bool { return bulk.times(7) == 1 }, 20*time.Second, 10*time.Millisecond,
			"the resume pass did not pick up the stale run:\n%s", p.log.String())
		assert.Contains(t, p.log.String(), `"msg":"bulk run resumed","run":7`)

		_, err := e.Insert(t.Context(), BulkRunArgs{RunID: 9, Since: 1}, nil)
		require.NoError(t, err)
		res, err := e.Insert(t.Context(), BulkRunArgs{RunID: 9, Since: 1}, nil)
		require.NoError(t, err)
		assert.True(t, res.UniqueSkippedAsDuplicate, "the same start is one job")
		require.Eventually(t, func() bool { return bulk.times(9) == 1 }, 20*time.Second, 10*time.Millisecond)
	})
}
