package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/store"
)

// chore is a periodic job of the process: run at start and then every
// interval until the context ends, logging what it did (at info, with the
// count) and what failed (at level). Several instances each run their own;
// every chore is safe to run concurrently and twice.
type chore struct {
	key   string // the metrics' label value, "sweep_sessions"
	name  string // the log's words for a failure, "sweep sessions"
	done  string // the log's words for work done, "swept sessions"
	every time.Duration
	level slog.Level
	run   func(ctx context.Context) (int64, error)
	attrs []any // added to the "done" line
}

// chores are the process's periodic jobs.
func chores(st store.Store, h *handlers.Handlers, retention time.Duration) []chore {
	return []chore{
		// Expired frame sessions: their tokens are useless and sealed.
		{key: "sweep_sessions", name: "sweep sessions", done: "swept sessions", every: 10 * time.Minute, level: slog.LevelWarn,
			run: func(ctx context.Context) (int64, error) { return st.DeleteExpiredSessions(ctx, time.Now()) }},
		// Tokens sealed under APP_SECRET_PREVIOUS move to the current
		// secret, so a rotation completes without reinstalls and the
		// previous secret can go once the log says nothing was left.
		{key: "reseal_tokens", name: "reseal tokens under the current secret", done: "resealed tokens under the current secret",
			every: 24 * time.Hour, level: slog.LevelError,
			run: func(ctx context.Context) (int64, error) { n, err := st.ResealTokens(ctx); return int64(n), err }},
		// The HISTORY_RETENTION_DAYS promise, hourly: entries are small,
		// and an hour past the promise is within its spirit.
		{key: "sweep_history", name: "sweep history", done: "swept history", every: time.Hour, level: slog.LevelWarn,
			attrs: []any{"retention_days", int(retention / (24 * time.Hour))},
			run: func(ctx context.Context) (int64, error) {
				return st.DeleteHistoryBefore(ctx, time.Now().Add(-retention))
			}},
		// Unconfirmed uninstall reports past their grace period.
		{key: "purge_reported_uninstalls", name: "purge reported uninstalls", done: "uninstalled reported portals after the grace period",
			every: time.Hour, level: slog.LevelWarn,
			run: func(ctx context.Context) (int64, error) {
				n, err := h.PurgeReportedUninstalls(ctx)
				return int64(n), err
			}},
	}
}

// choreObserver is told each run's outcome (metrics.ObserveChore).
type choreObserver func(key string, n int64, err error)

// runChore runs one chore until ctx ends.
func runChore(ctx context.Context, c chore, logger *slog.Logger, observe choreObserver) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		n, err := c.run(ctx)
		if ctx.Err() == nil {
			observe(c.key, n, err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Log(ctx, c.level, c.name, "err", err)
		case n > 0:
			logger.Info(c.done, append([]any{"count", n}, c.attrs...)...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
