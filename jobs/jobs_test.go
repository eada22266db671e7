package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b24apps/leadcontacts/internal/metrics"
	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/store/sqlite"
	"github.com/b24apps/leadcontacts/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend opens engines on one database of the test's own.
type backend struct {
	name string
	// database creates the test's database and returns how to open an
	// engine on it; every engine is stopped when the test ends.
	database func(t *testing.T) func(cfg Config) *Engine
}

var backends = []backend{
	{"sqlite", func(t *testing.T) func(Config) *Engine {
		// The store's pool, as the app passes it: its pragmas and its
		// migrations, with River's tables next to them.
		st := storetest.MustOpen(t, sqlite.Open, filepath.Join(t.TempDir(), "app.db"), storetest.Keys(t, "current"))
		return func(cfg Config) *Engine {
			e, err := NewSQLite(st.DB(), cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Stop() })
			return e
		}
	}},
	{"postgres", func(t *testing.T) func(Config) *Engine {
		url := storetest.FreshSchema(t, "jobs_")
		return func(cfg Config) *Engine {
			e, err := NewPostgres(t.Context(), url, cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Stop() })
			return e
		}
	}},
}

// forEach runs the test on every backend, in parallel.
func forEach(t *testing.T, fn func(t *testing.T, open func(Config) *Engine)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.name == "postgres" {
				storetest.PostgresURL(t)
			}
			fn(t, b.database(t))
		})
	}
}

// probe is a test's view of the engines: their log, the outcomes they
// observed, and their inserts.
type probe struct {
	log      testsync.Buffer
	mu       sync.Mutex
	outcomes []outcome
	inserted atomic.Int64 // jobs inserted
	skipped  atomic.Int64 // unique jobs found already there
}

type outcome struct {
	key string
	n   int64
	err error
}

// config is the engine's configuration for a test, reporting to p; id
// names the instance.
func (p *probe) config(id string, chores ...Chore) Config {
	return Config{
		Logger:  slog.New(slog.NewJSONHandler(&p.log, nil)),
		Chores:  chores,
		Observe: p.observe,
		// Quick to find work, no jittered start.
		pollInterval: 100 * time.Millisecond,
		testOnly:     true,
		id:           id,
		onInsert: func(r *rivertype.JobInsertResult) {
			if r.UniqueSkippedAsDuplicate {
				p.skipped.Add(1)
			} else {
				p.inserted.Add(1)
			}
		},
	}
}

func (p *probe) observe(key string, n int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outcomes = append(p.outcomes, outcome{key, n, err})
}

func (p *probe) seen() []outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outcome(nil), p.outcomes...)
}

// waitOutcomes waits until n outcomes were observed.
func (p *probe) waitOutcomes(t *testing.T, n int) []outcome {
	t.Helper()
	require.Eventually(t, func() bool { return len(p.seen()) >= n }, 20*time.Second, 10*time.Millisecond,
		"outcomes: %v\nlog:\n%s", p.seen(), p.log.String())
	return p.seen()
}

// monthly is a period no test straddles but by a rare accident.
const monthly = 30 * 24 * time.Hour

// jobsOf lists the chore jobs in the engine's database.
func jobsOf(t *testing.T, e *Engine) []*rivertype.JobRow {
	t.Helper()
	res, err := e.client.JobList(t.Context(), river.NewJobListParams().Kinds("chore").First(100))
	require.NoError(t, err)
	return res.Jobs
}

// A chore runs as a River job at start: its work is done, its outcome
// observed and logged as before, and the job is unique for its period.
func TestChoreRunsAsJob(t *testing.T) {
	forEach(t, func(t *testing.T, open func(Config) *Engine) {
		var p probe
		var runs atomic.Int64
		e := open(p.config("a", Chore{Key: "sweep_things", Name: "sweep things", Done: "swept things", Every: monthly,
			Level: slog.LevelWarn, Attrs: []any{"retention_days", 90},
			Run: func(context.Context) (int64, error) { runs.Add(1); return 3, nil }}))
		e.Start(t.Context())

		got := p.waitOutcomes(t, 1)
		assert.Equal(t, []outcome{{"sweep_things", 3, nil}}, got)
		assert.Equal(t, int64(1), runs.Load())
		assert.Contains(t, p.log.String(), `"msg":"swept things","count":3,"retention_days":90`)

		require.Eventually(t, func() bool {
			js := jobsOf(t, e)
			return len(js) == 1 && js[0].State == rivertype.JobStateCompleted
		}, 10*time.Second, 10*time.Millisecond)
		job := jobsOf(t, e)[0]
		assert.JSONEq(t, `{"chore":"sweep_things"}`, string(job.EncodedArgs))
		assert.NotEmpty(t, job.UniqueKey, "a periodic chore is unique per period")
		assert.Equal(t, choreAttempts, job.MaxAttempts)
		require.NoError(t, e.Stop())
		assert.NotContains(t, p.log.String(), `"level":"ERROR"`)
	})
}

// A restarted instance, or a new leader, does not run a chore again in
// the period it already ran in, unless its variant changed (a reseal under
// a new key). On PostgreSQL two instances start together: one leader
// enqueues, and when it stops the other takes over and finds the
// period's job there.
func TestChoreOncePerPeriod(t *testing.T) {
	forEach(t, func(t *testing.T, open func(Config) *Engine) {
		var p probe
		var runs atomic.Int64
		chore := Chore{Key: "sweep_things", Name: "sweep things", Done: "swept things", Every: monthly, Level: slog.LevelWarn,
			Run: func(context.Context) (int64, error) { runs.Add(1); return 0, nil }}

		a := open(p.config("a", chore))
		a.Start(t.Context())
		p.waitOutcomes(t, 1)
		require.NoError(t, a.Stop())

		// The next instance becomes leader and inserts its run-on-start
		// job: River finds the period's job and skips it.
		b := open(p.config("b", chore))
		b.Start(t.Context())
		require.Eventually(t, func() bool { return p.skipped.Load() >= 1 }, 20*time.Second, 10*time.Millisecond, p.log.String())
		time.Sleep(500 * time.Millisecond) // five polls: a second job would be worked by now
		assert.Equal(t, int64(1), runs.Load())
		assert.Equal(t, int64(1), p.inserted.Load())
		require.NoError(t, b.Stop())

		// A new variant is a new job.
		chore.Variant = "k2"
		c := open(p.config("c", chore))
		c.Start(t.Context())
		p.waitOutcomes(t, 2)
		assert.Equal(t, int64(2), runs.Load())
		assert.Len(t, jobsOf(t, c), 2)
		require.NoError(t, c.Stop())
	})
}

// Two instances on one PostgreSQL database run a periodic chore once:
// only River's leader enqueues, and its successor finds the job there.
func TestChoreOnceAcrossInstances(t *testing.T) {
	storetest.PostgresURL(t)
	t.Parallel()
	open := backends[1].database(t)
	var p probe
	var runs atomic.Int64
	chore := Chore{Key: "sweep_things", Name: "sweep things", Done: "swept things", Every: monthly, Level: slog.LevelWarn,
		Run: func(context.Context) (int64, error) { runs.Add(1); return 0, nil }}
	engines := map[string]*Engine{"a": open(p.config("a", chore)), "b": open(p.config("b", chore))}
	testsync.AtOnce(2, func(i int) struct{} {
		engines[string(rune('a'+i))].Start(t.Context())
		return struct{}{}
	})
	p.waitOutcomes(t, 1)
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, int64(1), runs.Load())
	assert.Equal(t, int64(1), p.inserted.Load(), "only the leader enqueues")

	// Stop the leader; the other is elected and its run-on-start insert
	// finds the period's job.
	leader := leaderID(t, engines["a"])
	require.Contains(t, engines, leader)
	skipped := p.skipped.Load()
	require.NoError(t, engines[leader].Stop())
	require.Eventually(t, func() bool { return p.skipped.Load() > skipped }, 20*time.Second, 10*time.Millisecond, p.log.String())
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, int64(1), runs.Load())
	assert.Len(t, jobsOf(t, engines[map[string]string{"a": "b", "b": "a"}[leader]]), 1)
}

// leaderID is the id of River's current leader, waited for.
func leaderID(t *testing.T, e *Engine) string {
	t.Helper()
	pool := e.pool
	require.NotNil(t, pool)
	var id string
	require.Eventually(t, func() bool {
		return pool.QueryRow(t.Context(), `SELECT leader_id FROM river_leader`).Scan(&id) == nil
	}, 20*time.Second, 10*time.Millisecond)
	return id
}

// A failed run is logged at the chore's level, counted as an error in
// the metrics, and retried by River's policy (about a second later); the
// retry's success is counted too.
func TestChoreFailureRetried(t *testing.T) {
	forEach(t, func(t *testing.T, open func(Config) *Engine) {
		var p probe
		mx := metrics.New()
		var runs atomic.Int64
		cfg := p.config("a", Chore{Key: "sweep_history", Name: "sweep history", Done: "swept history", Every: monthly, Level: slog.LevelWarn,
			Run: func(context.Context) (int64, error) {
				if runs.Add(1) == 1 {
					return 0, errors.New("disk on fire")
				}
				return 2, nil
			}})
		cfg.Observe = func(key string, n int64, err error) {
			mx.ObserveChore(key, n, err)
			p.observe(key, n, err)
		}
		e := open(cfg)
		e.Start(t.Context())

		got := p.waitOutcomes(t, 2)
		require.Len(t, got, 2)
		assert.EqualError(t, got[0].err, "disk on fire")
		assert.Equal(t, outcome{"sweep_history", 2, nil}, got[1])
		assert.Contains(t, p.log.String(), `"level":"WARN","msg":"sweep history","err":"disk on fire","attempt":1,"max_attempts":4`)
		scrape := scrape(t, mx)
		assert.Contains(t, scrape, `leadcontacts_chore_runs_total{chore="sweep_history",outcome="error"} 1`)
		assert.Contains(t, scrape, `leadcontacts_chore_runs_total{chore="sweep_history",outcome="ok"} 1`)
		assert.Contains(t, scrape, `leadcontacts_chore_items_total{chore="sweep_history"} 2`)

		require.Eventually(t, func() bool {
			js := jobsOf(t, e)
			return len(js) == 1 && js[0].State == rivertype.JobStateCompleted
		}, 10*time.Second, 10*time.Millisecond)
		job := jobsOf(t, e)[0]
		assert.Equal(t, 2, job.Attempt)
		require.Len(t, job.Errors, 1)
		assert.Equal(t, "disk on fire", job.Errors[0].Error)
	})
}

// A panic is a failed run like an error: logged, counted, retried.
func TestChorePanicRetried(t *testing.T) {
	var p probe
	open := backends[0].database(t)
	var runs atomic.Int64
	e := open(p.config("a", Chore{Key: "reseal_tokens", Name: "reseal tokens", Done: "resealed tokens", Every: monthly, Level: slog.LevelError,
		Run: func(context.Context) (int64, error) {
			if runs.Add(1) == 1 {
				panic("nil keyring")
			}
			return 0, nil
		}}))
	e.Start(t.Context())
	got := p.waitOutcomes(t, 2)
	assert.ErrorContains(t, got[0].err, "nil keyring")
	assert.NoError(t, got[1].err)
	assert.Contains(t, p.log.String(), `"level":"ERROR","msg":"reseal tokens","err":"jobs: chore reseal_tokens panicked: nil keyring"`)
}

func scrape(t *testing.T, mx *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	mx.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, metrics.Path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return string(body)
}

// Stopping waits for the jobs in flight up to StopTimeout, then cancels
// them: the run is left for River to retry (at once, on another instance
// or the next start, without spending an attempt), neither logged as a
// failure nor counted.
func TestStopLeavesRunForRetry(t *testing.T) {
	forEach(t, func(t *testing.T, open func(Config) *Engine) {
		var p probe
		started := make(chan struct{})
		cfg := p.config("a", Chore{Key: "purge_reported_uninstalls", Name: "purge", Done: "purged", Every: monthly, Level: slog.LevelWarn,
			Run: func(ctx context.Context) (int64, error) {
				close(started)
				<-ctx.Done()
				return 0, ctx.Err()
			}})
		cfg.StopTimeout = 200 * time.Millisecond
		e := open(cfg)
		e.Start(t.Context())
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatalf("the chore did not start:\n%s", p.log.String())
		}
		begun := time.Now()
		require.NoError(t, e.Stop())
		assert.Less(t, time.Since(begun), 5*time.Second)
		assert.Empty(t, p.seen())
		assert.NotContains(t, p.log.String(), `"msg":"purge"`)

		js := jobsOf(t, open(p.config("reader")))
		require.Len(t, js, 1)
		assert.Equal(t, rivertype.JobStateAvailable, js[0].State)
		assert.Equal(t, 0, js[0].Attempt)
	})
}

// An engine that cannot reach its database says so through Done and Err,
// without the URL's password.
func TestStartFails(t *testing.T) {
	var p probe
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	e, err := NewPostgres(ctx, "postgres://app:PASSWORD-SENTINEL@127.0.0.1:1/app?sslmode=disable&connect_timeout=5", p.config("a"))
	require.NoError(t, err, "the pool connects lazily")
	e.Start(ctx)
	select {
	case <-e.Done():
	case <-ctx.Done():
		t.Fatal("the engine did not give up")
	}
	require.Error(t, e.Err())
	assert.Contains(t, e.Err().Error(), "jobs: migrate")
	assert.NotContains(t, e.Err().Error(), "PASSWORD-SENTINEL")
	assert.NotContains(t, p.log.String(), "PASSWORD-SENTINEL")
	assert.Equal(t, e.Err(), e.Stop())
}

// Chores are checked when the engine is built.
func TestChoreValidation(t *testing.T) {
	run := func(context.Context) (int64, error) { return 0, nil }
	for name, chores := range map[string][]Chore{
		"no key":     {{Every: time.Hour, Run: run}},
		"no run":     {{Key: "x", Every: time.Hour}},
		"twice":      {{Key: "x", Every: time.Hour, Run: run}, {Key: "x", Every: time.Hour, Run: run}},
		"too often":  {{Key: "x", Every: time.Second, Run: run}},
		"bad period": {{Key: "x", Every: 0, Run: run}},
	} {
		t.Run(name, func(t *testing.T) {
			var p probe
			_, err := newChoresOnly(p.config("a", chores...))
			assert.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "jobs: chore"), err.Error())
		})
	}
}

func newChoresOnly(cfg Config) ([]*river.PeriodicJob, error) {
	return register(river.NewWorkers(), cfg, &inserter{})
}

// The schedule falls on the multiples of the period, as River's unique
// periods do.
func TestAligned(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 7, 30, 0, time.UTC)
	assert.Equal(t, time.Date(2026, 3, 1, 10, 10, 0, 0, time.UTC), aligned(10*time.Minute).Next(at))
	assert.Equal(t, time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), aligned(time.Hour).Next(at))
	assert.Equal(t, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), aligned(24*time.Hour).Next(at))
	assert.Equal(t, time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC), aligned(10*time.Minute).Next(time.Date(2026, 3, 1, 10, 10, 0, 0, time.UTC)))
}
