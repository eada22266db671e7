package main

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/jobs"
	"github.com/b24apps/leadcontacts/store"
)

// chores are the app's periodic jobs, run by the job engine (jobs) once
// per cluster per period. keyID names the current secret's key: a
// restart after a rotation reseals at once instead of the next day.
func chores(st store.Store, h *handlers.Handlers, retention time.Duration, keyID string) []jobs.Chore {
	return []jobs.Chore{
		// Expired frame sessions: their tokens are useless and sealed.
		{Key: "sweep_sessions", Name: "sweep sessions", Done: "swept sessions", Every: 10 * time.Minute, Level: slog.LevelWarn,
			Run: func(ctx context.Context) (int64, error) { return st.DeleteExpiredSessions(ctx, time.Now()) }},
		// Tokens sealed under APP_SECRET_PREVIOUS move to the current
		// secret, so a rotation completes without reinstalls and the
		// previous secret can go once the log says nothing was left.
		{Key: "reseal_tokens", Name: "reseal tokens under the current secret", Done: "resealed tokens under the current secret",
			Every: 24 * time.Hour, Level: slog.LevelError, Variant: keyID,
			Run: func(ctx context.Context) (int64, error) { n, err := st.ResealTokens(ctx); return int64(n), err }},
		// The HISTORY_RETENTION_DAYS promise, hourly: entries are small,
		// and an hour past the promise is within its spirit.
		{Key: "sweep_history", Name: "sweep history", Done: "swept history", Every: time.Hour, Level: slog.LevelWarn,
			Attrs: []any{"retention_days", int(retention / (24 * time.Hour))},
			Run: func(ctx context.Context) (int64, error) {
				return st.DeleteHistoryBefore(ctx, time.Now().Add(-retention))
			}},
		// Unconfirmed uninstall reports past their grace period.
		{Key: "purge_reported_uninstalls", Name: "purge reported uninstalls", Done: "uninstalled reported portals after the grace period",
			Every: time.Hour, Level: slog.LevelWarn,
			Run: func(ctx context.Context) (int64, error) {
				n, err := h.PurgeReportedUninstalls(ctx)
				return int64(n), err
			}},
	}
}

// newJobs is the job engine on the store's database: on SQLite, the
// store's own pool.
func newJobs(ctx context.Context, dsn string, st store.Store, cfg jobs.Config) (*jobs.Engine, error) {
	if storeKind(dsn) != "sqlite" {
		return jobs.NewPostgres(ctx, dsn, cfg)
	}
	db, ok := st.(interface{ DB() *sql.DB })
	if !ok {
		return nil, errors.New("jobs: the SQLite store has no pool")
	}
	return jobs.NewSQLite(db.DB(), cfg)
}

// jobQueue enqueues the handlers' background work (bulk runs, the
// automation rules' runs) on the job engine, once it exists.
type jobQueue struct{ eng *jobs.Engine }

// EnqueueBulkRun implements handlers.BulkQueue: a job for the run, told
// apart from the run's earlier jobs by the time (a resume after a pause
// needs a job of its own; the run's lease keeps a duplicate harmless).
func (q *jobQueue) EnqueueBulkRun(ctx context.Context, id int64) error {
	if q.eng == nil {
		return errors.New("jobs: the engine is not built yet")
	}
	_, err := q.eng.Insert(ctx, jobs.BulkRunArgs{RunID: id, Since: time.Now().UnixNano()}, nil)
	return err
}

// EnqueueRobotRun implements handlers.RobotQueue.
func (q *jobQueue) EnqueueRobotRun(ctx context.Context, sealed string) error {
	if q.eng == nil {
		return errors.New("jobs: the engine is not built yet")
	}
	_, err := q.eng.Insert(ctx, jobs.RobotRunArgs{Sealed: sealed}, nil)
	return err
}
