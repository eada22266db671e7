// Package jobs runs the app's background work as River jobs
// (github.com/riverqueue/river), on the database the store uses: SQLite
// through riversqlite on the store's own pool, PostgreSQL through
// riverpgxv5 on a small pgx pool of its own.
//
// Every instance works jobs; River's elected leader (one per database,
// through its river_leader table) alone enqueues the periodic ones, and
// each periodic job is unique per period, so a sweep runs once per cluster
// per period however many instances run or restart.
//
// A new kind of job is added in one place, kinds.go: its args type, its
// worker, and a line in register.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// Config is what the engine needs from the app.
type Config struct {
	// Logger gets the jobs' own lines and River's warnings and errors.
	Logger *slog.Logger
	// Chores are the periodic jobs.
	Chores []Chore
	// Bulk, when set, works the admins' bulk runs (bulk.go).
	Bulk Bulk
	// Robots, when set, works the automation rules' runs (robot.go).
	Robots Robots
	// Observe is told every outcome of a chore (metrics.ObserveChore).
	Observe func(key string, n int64, err error)
	// StartDelay defers the migration and the start, so that they do
	// not compete for the CPU with the app's first answers (its cold
	// start is a tracked figure). Chores run soon after start all the
	// same: River staggers its leader's services by up to a second anyway.
	StartDelay time.Duration
	// StopTimeout bounds the graceful stop: jobs in flight get this long
	// to finish, then their contexts end and River retries them later.
	// Default 10 s.
	StopTimeout time.Duration

	// The tests' knobs: how often an idle instance looks for work (River's
	// default, a second, when zero), River's test mode (no jittered start
	// of the leader's services), the client id, and a hook told of every
	// insert (a unique job skipped as a duplicate included).
	pollInterval time.Duration
	testOnly     bool
	id           string
	onInsert     func(*rivertype.JobInsertResult)
}

// Engine is River with the app's kinds of jobs, on one database.
type Engine struct {
	client  client
	migrate func(context.Context) error
	close   func()
	cfg     Config
	pool    *pgxpool.Pool // PostgreSQL's, nil on SQLite

	cancel context.CancelFunc // ends Start's context
	done   chan struct{}      // closed when run returns
	err    error              // run's result
}

// client is what the engine uses of a *river.Client, whatever its
// transaction type.
type client interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
}

// NewSQLite is the engine on the store's SQLite pool. SQLite allows one
// writer at a time: River's writes are short, and the store's pragmas
// (busy_timeout, immediate transactions) make each writer wait its turn.
func NewSQLite(db *sql.DB, cfg Config) (*Engine, error) {
	e, err := newEngine(riversqlite.New(db), cfg, nil)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// NewPostgres is the engine on the PostgreSQL database at url (the
// store's DATABASE_URL; River's tables go to the first schema of its
// search_path, next to the store's). River needs a pgx pool, the store
// keeps its database/sql one: this pool is small and connects lazily.
func NewPostgres(ctx context.Context, url string, cfg Config) (*Engine, error) {
	// Errors below never quote url: it may carry a password.
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("jobs: the database URL does not parse")
	}
	pc.MaxConns = poolConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("jobs: open postgres: %w", err)
	}
	e, err := newEngine(riverpgxv5.New(pool), cfg, func(ctx context.Context, migrate func(context.Context) error) error {
		return withAdvisoryLock(ctx, pool, migrate)
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	e.close = sync.OnceFunc(pool.Close)
	e.pool = pool
	return e, nil
}

// poolConns covers River's standing needs on PostgreSQL (the LISTEN
// connection, the leader's maintenance, fetches and completions) and a
// few jobs at once; jobs reach the store through the store's own pool.
const poolConns = 6

// migrationLock serializes instances migrating River's tables together
// (rivermigrate takes no lock of its own): "leadriver".
const migrationLock = 0x6c65616472697672

// withAdvisoryLock runs fn holding a session-level advisory lock on one
// connection of pool; fn's statements run on other connections.
func withAdvisoryLock(ctx context.Context, pool *pgxpool.Pool, fn func(context.Context) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	ferr := fn(ctx)
	// Unlocked even when ctx ended: otherwise the pooled connection would
	// keep the lock until it closes.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(migrationLock)); err != nil {
		_ = conn.Conn().PgConn().Close(uctx) // the lock goes with the connection
	}
	return ferr
}

// newEngine builds the River client and its migrator on a driver; lock,
// when set, wraps the migration.
func newEngine[TTx any](driver riverdriver.Driver[TTx], cfg Config, lock func(context.Context, func(context.Context) error) error) (*Engine, error) {
	if cfg.Logger == nil {
		return nil, errors.New("jobs: nil logger")
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, int64, error) {}
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	workers := river.NewWorkers()
	ins := &inserter{}
	periodic, err := register(workers, cfg, ins)
	if err != nil {
		return nil, err
	}
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}}
	if cfg.Robots != nil {
		queues[QueueRobots] = river.QueueConfig{MaxWorkers: robotWorkers}
	}
	rc, err := river.NewClient(driver, &river.Config{
		ID:                cfg.id,
		Logger:            riverLogger(cfg.Logger),
		Workers:           workers,
		PeriodicJobs:      periodic,
		Queues:            queues,
		FetchPollInterval: cfg.pollInterval,
		TestOnly:          cfg.testOnly,
		SoftStopTimeout:   cfg.StopTimeout,
		ErrorHandler:      panicHandler{cfg.Logger},
		Middleware:        []rivertype.Middleware{insertHook{cfg.onInsert}},
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	ins.fn = rc.Insert
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: riverLogger(cfg.Logger)})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	migrate := func(ctx context.Context) error {
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("jobs: migrate: %w", err)
		}
		return nil
	}
	e := &Engine{client: rc, migrate: migrate, close: func() {}, cfg: cfg, done: make(chan struct{})}
	if lock != nil {
		e.migrate = func(ctx context.Context) error { return lock(ctx, migrate) }
	}
	return e, nil
}

// maxWorkers is how many jobs one instance works at once: the chores are
// few, and a bulk run works one batch at a time.
const maxWorkers = 4

// Insert enqueues a job of a registered kind (see kinds.go).
func (e *Engine) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return e.client.Insert(ctx, args, opts)
}

// Migrate brings River's tables up to date (they live next to the
// store's, with their own version table, river_migration).
func (e *Engine) Migrate(ctx context.Context) error { return e.migrate(ctx) }

// Start migrates River's tables and starts working jobs, in the
// background: it returns at once, so the app answers its readiness probe
// meanwhile (readiness means the store answers). When ctx ends, or Stop is
// called, the engine stops gracefully: jobs in flight get
// Config.StopTimeout to finish, then are cancelled and left for River to
// retry. Start is called once.
func (e *Engine) Start(ctx context.Context) {
	ctx, e.cancel = context.WithCancel(ctx)
	go func() {
		defer close(e.done)
		e.err = e.run(ctx)
	}()
}

// run is the engine's life, from migration to stop.
func (e *Engine) run(ctx context.Context) error {
	defer e.close()
	if e.cfg.StartDelay > 0 {
		t := time.NewTimer(e.cfg.StartDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	if err := e.migrate(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// The jobs' contexts must outlive ctx: its end asks for a graceful
	// stop, which Stop does, not for cancelling the work in flight.
	if err := e.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	e.cfg.Logger.InfoContext(ctx, "jobs started")
	<-ctx.Done()
	return e.stop()
}

// Done is closed when the engine has stopped: early when it could not
// start (Err says why), else once ctx ended and the stop finished.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err is why the engine stopped, once Done is closed; nil after a clean
// stop.
func (e *Engine) Err() error {
	<-e.done
	return e.err
}

// Stop stops the engine as the end of Start's context does, and waits;
// it returns Err. Without Start, it releases the engine's pool.
func (e *Engine) Stop() error {
	if e.cancel == nil {
		e.close()
		return nil
	}
	e.cancel()
	return e.Err()
}

// stop stops the client: softly first (SoftStopTimeout cancels what is
// still running after Config.StopTimeout), then with a hard stop.
func (e *Engine) stop() error {
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.StopTimeout+5*time.Second)
	defer cancel()
	if err := e.client.Stop(sctx); err == nil {
		return nil
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	if err := e.client.StopAndCancel(hctx); err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// panicHandler logs a job's panic; River recovers it and retries the job.
// Errors returned by workers are logged and counted by the workers
// themselves, in their own words (chores recover their own panics).
type panicHandler struct {
	logger *slog.Logger
}

func (h panicHandler) HandleError(context.Context, *rivertype.JobRow, error) *river.ErrorHandlerResult {
	return nil
}

func (h panicHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, _ string) *river.ErrorHandlerResult {
	h.logger.ErrorContext(ctx, "job panicked", "kind", job.Kind, "attempt", job.Attempt, "panic", fmt.Sprint(v))
	return nil
}

// insertHook tells the tests' hook of every insert.
type insertHook struct {
	fn func(*rivertype.JobInsertResult)
}

func (insertHook) IsMiddleware() bool { return true }

func (h insertHook) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams,
	doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	res, err := doInner(ctx)
	if h.fn != nil {
		for _, r := range res {
			h.fn(r)
		}
	}
	return res, err
}

// riverLogger is the app's logger for River's own lines, at warning and
// above: River narrates elections and maintenance at info, which would
// drown the app's lines. River logs job kinds, ids and errors, never args
// (ours carry nothing secret anyway).
func riverLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn}).With("component", "river")
}

// minLevel drops records below its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
