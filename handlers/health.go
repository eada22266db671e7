package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Paths of the probes. They are not in app.json: Bitrix24 never calls
// them, orchestrators and load balancers do.
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
)

// DefaultReadyTimeout is Config.ReadyTimeout when unset: a database that
// takes longer to answer SELECT 1 is not one to send users to.
const DefaultReadyTimeout = time.Second

// ErrDraining is Ready's answer once StartDraining was called.
var ErrDraining = errors.New("draining: shutting down")

// StartDraining makes the instance report itself not ready from now on,
// while it keeps serving: main calls it on SIGTERM and waits a moment
// before it stops accepting connections, so a load balancer that probes
// /readyz moves traffic away first.
func (h *Handlers) StartDraining() { h.draining.Store(true) }

// Ready reports whether this instance should receive traffic: it is not
// draining and the database answered within ReadyTimeout. /readyz serves
// it; a metrics exporter can call it too.
func (h *Handlers) Ready(ctx context.Context) error {
	if h.draining.Load() {
		return ErrDraining
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ReadyTimeout)
	defer cancel()
	if err := h.d.Store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// healthz says the process is alive and serving HTTP, nothing more: a
// database outage must not get every instance restarted.
func (h *Handlers) healthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.String(http.StatusOK, "ok")
}

// readyz answers 200 when Ready does and 503 otherwise; the body names
// the reason in two words, the log line has the error.
func (h *Handlers) readyz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	err := h.Ready(c.Request.Context())
	switch {
	case err == nil:
		c.String(http.StatusOK, "ready")
	case errors.Is(err, ErrDraining):
		c.String(http.StatusServiceUnavailable, "draining")
	default:
		h.d.Logger.WarnContext(c.Request.Context(), "not ready", "err", err)
		c.String(http.StatusServiceUnavailable, "database unavailable")
	}
}
