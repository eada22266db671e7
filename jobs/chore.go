package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// Chore is a periodic job: a sweep, the reseal pass, the purge. It runs
// when an instance becomes River's leader and then at every multiple of
// Every (UTC, so 10 min runs at :00, :10...), at most once per such period
// in the whole cluster, and logs what it did (at info, with the count) and
// what failed (at Level). Every chore must be safe to run twice and
// concurrently: a failed run is retried while the next period's may start.
type Chore struct {
	Key   string // the job's name and the metrics' label value, "sweep_sessions"
	Name  string // the log's words for a failure, "sweep sessions"
	Done  string // the log's words for work done, "swept sessions"
	Every time.Duration
	Level slog.Level
	Attrs []any // added to the "done" line
	// Variant, when set, is part of the job's unique key, so a chore runs
	// again within its period when it changes: the reseal pass after a
	// rotation of APP_SECRET names the current key's id.
	Variant string
	Run     func(ctx context.Context) (int64, error)
}

// ChoreArgs are a chore job's arguments: which chore, and its variant.
type ChoreArgs struct {
	Chore   string `json:"chore"`
	Variant string `json:"variant,omitempty"`
}

// Kind is River's name of the kind.
func (ChoreArgs) Kind() string { return "chore" }

// choreAttempts: a failed run is retried after about 1 s, 16 s and 81 s
// (River's default policy, attempt⁴ seconds), then given up until the
// next period.
const choreAttempts = 4

// maxChoreTimeout bounds one run; a chore's own period bounds it too.
const maxChoreTimeout = 10 * time.Minute

// choreWorker works every chore, found by its key.
type choreWorker struct {
	river.WorkerDefaults[ChoreArgs]
	chores  map[string]Chore
	logger  *slog.Logger
	observe func(string, int64, error)
}

// newChores checks the chores and returns their worker and periodic jobs.
func newChores(cfg Config) (*choreWorker, []*river.PeriodicJob, error) {
	w := &choreWorker{chores: map[string]Chore{}, logger: cfg.Logger, observe: cfg.Observe}
	var periodic []*river.PeriodicJob
	for _, c := range cfg.Chores {
		switch _, dup := w.chores[c.Key]; {
		case c.Key == "" || c.Run == nil:
			return nil, nil, fmt.Errorf("jobs: chore %q: a key and a function are required", c.Key)
		case dup:
			return nil, nil, fmt.Errorf("jobs: chore %q twice", c.Key)
		case c.Every < time.Minute:
			return nil, nil, fmt.Errorf("jobs: chore %q: every %v, want a minute or more", c.Key, c.Every)
		}
		w.chores[c.Key] = c
		args := ChoreArgs{Chore: c.Key, Variant: c.Variant}
		opts := &river.InsertOpts{MaxAttempts: choreAttempts,
			// One job per chore (and variant) per period, whoever inserts
			// it: a new leader's first run, a restart's, and the schedule
			// all land in the period's one slot, and a run that already
			// completed in it keeps it.
			UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: c.Every}}
		periodic = append(periodic, river.NewPeriodicJob(aligned(c.Every),
			func() (river.JobArgs, *river.InsertOpts) { return args, opts },
			&river.PeriodicJobOpts{ID: "chore_" + c.Key, RunOnStart: true}))
	}
	return w, periodic, nil
}

// Work runs the chore, logs and observes its outcome; a panic is a
// failed run like an error. A run cut short by the engine's stop is
// neither logged nor observed: it is retried.
func (w *choreWorker) Work(ctx context.Context, job *river.Job[ChoreArgs]) (err error) {
	c, ok := w.chores[job.Args.Chore]
	if !ok {
		// Enqueued by an instance of another version of the app.
		return river.JobCancel(fmt.Errorf("jobs: unknown chore %q", job.Args.Chore))
	}
	var n int64
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("jobs: chore %s panicked: %v", c.Key, v)
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			err = cmpErr(err, ctx.Err())
			return
		}
		w.observe(c.Key, n, err)
		switch {
		case err != nil:
			w.logger.Log(ctx, c.Level, c.Name, "err", err, "attempt", job.Attempt, "max_attempts", job.MaxAttempts)
		case n > 0:
			w.logger.Info(c.Done, append([]any{"count", n}, c.Attrs...)...)
		}
	}()
	n, err = c.Run(ctx)
	return err
}

// Timeout is half the chore's period, at most maxChoreTimeout: a hung run
// ends well before the next one is due.
func (w *choreWorker) Timeout(job *river.Job[ChoreArgs]) time.Duration {
	if c, ok := w.chores[job.Args.Chore]; ok {
		return min(c.Every/2, maxChoreTimeout)
	}
	return time.Minute
}

// cmpErr is err, or alt when err is nil.
func cmpErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// aligned is a schedule at the multiples of a period since the zero time,
// which are UTC's: the same instants as River's unique periods.
type aligned time.Duration

func (a aligned) Next(t time.Time) time.Time {
	d := time.Duration(a)
	return t.Truncate(d).Add(d)
}
