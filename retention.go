package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/store"
)

// sweepHistory deletes history entries older than the retention (the
// HISTORY_RETENTION_DAYS promise), once at start and then hourly: entries
// are small, and an hour past the promise is within its spirit.
func sweepHistory(ctx context.Context, st store.Store, retention time.Duration, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := st.DeleteHistoryBefore(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("sweep history", "err", err)
		case n > 0:
			logger.Info("swept history", "count", n, "retention_days", int(retention/(24*time.Hour)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeReportedUninstalls uninstalls, hourly, the portals whose
// unconfirmed uninstall report outlived the grace period (see
// handlers.PurgeReportedUninstalls).
func purgeReportedUninstalls(ctx context.Context, h *handlers.Handlers, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := h.PurgeReportedUninstalls(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("purge reported uninstalls", "err", err)
		case n > 0:
			logger.Info("uninstalled reported portals after the grace period", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
