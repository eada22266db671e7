// Command leadcontacts serves the "Contacts cleanup" Bitrix24 app: a tab in
// the CRM lead card that unlinks all contacts from a lead. With -demo it
// also starts a simulated Bitrix24 portal, so the whole flow can be clicked
// through in a browser without any real portal.
package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
	// The image has no zoneinfo (FROM scratch): the admins' page shows
	// times in the zone the admin's Bitrix24 profile names.
	_ "time/tzdata"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/internal/metrics"
	"github.com/b24apps/leadcontacts/internal/reqid"
	"github.com/b24apps/leadcontacts/jobs"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/static"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/postgres"
	"github.com/b24apps/leadcontacts/store/sqlite"
)

//go:embed app.json
var appJSON []byte

func main() {
	// Nothing reads heap profiles from this process: sampling them would
	// cost a hash table of call stacks (1.4 MB at peak) for nothing.
	runtime.MemProfileRate = 0
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if code := exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout), os.Stderr); code != 0 {
		stop()
		os.Exit(code)
	}
}

// exitCode is the process's exit status for run's result; an error is
// written as a JSON line like every other, so a log pipeline that parses
// the app's output does not drop the one line that says why it stopped.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	slog.New(slog.NewJSONHandler(stderr, nil)).Error("exiting", "err", err.Error())
	return 1
}

// run reads the configuration, opens the store, builds the clients and the
// HTTP server, serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("leadcontacts", flag.ContinueOnError)
	// The flag package's own messages are plain text: a bad flag comes
	// back as run's error (logged as JSON by main), -h prints usage.
	fs.SetOutput(io.Discard)
	demo := fs.Bool("demo", false, "start a simulated Bitrix24 portal and open the app in it (no configuration needed);\n"+
		"      the app listens on ADDR (default "+defaultDemoAddr+"), the portal on DEMO_PORTAL_ADDR (default "+defaultDemoPortalAddr+")")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return usage(stdout, fs)
	} else if err != nil {
		return fmt.Errorf("%w (-h lists the flags and variables)", err)
	}
	logger := slog.New(reqid.Handler(slog.NewJSONHandler(stdout, nil)))
	m, err := manifest.Parse(appJSON)
	if err != nil {
		return err
	}

	var cfg Config
	var ln net.Listener
	var cleanup func()
	if *demo {
		var d *demoEnv
		d, err = startDemo(getenv, m, logger)
		if err != nil {
			return err
		}
		cfg, ln, cleanup = d.cfg, d.ln, d.close
		defer cleanup()
		fmt.Fprintf(stdout, "Demo portal: %s\n", d.portalURL)
	} else {
		cfg, err = loadConfig(getenv)
		if err != nil {
			return err
		}
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	defer ln.Close()

	// The catalogues and assets load on the other core while the store
	// opens: start-up is on the path of every deploy and scale-out.
	var bundle *lang.Bundle
	var assets *static.Assets
	loaded := make(chan error, 1)
	go func() {
		var err error
		if bundle, err = lang.Load(); err == nil {
			assets, err = static.Load()
		}
		loaded <- err
	}()
	keys, err := secret.NewKeyring(cfg.Secret, nonEmpty(cfg.SecretPrevious)...)
	if err != nil {
		return err
	}
	if err := checkSQLiteVolume(cfg.DatabaseURL); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg.DatabaseURL, keys)
	if err != nil {
		return err
	}
	defer st.Close()
	// The app's own registry, filled whether or not METRICS_ADDR is set:
	// counting costs a few atomic adds, and one code path is simpler.
	mx := metrics.New()
	if db, ok := st.(interface{ DB() *sql.DB }); ok {
		if err := mx.WatchDB(db.DB(), storeKind(cfg.DatabaseURL)); err != nil {
			return err
		}
	}

	if err := <-loaded; err != nil {
		return err
	}
	httpClient := bitrix24.NewHTTPClient(cfg.AllowHTTP)
	logREST := restLogger(logger)
	rest := bitrix24.New(bitrix24.Options{HTTPClient: httpClient, PortalRate: cfg.PortalRate, PortalBurst: cfg.PortalBurst,
		Observe: func(ctx context.Context, x bitrix24.Exchange) {
			logREST(ctx, x)
			mx.ObserveExchange(ctx, x)
		},
		Refused: mx.ObserveRefusal})
	oc := oauth.New(cfg.ClientID, cfg.ClientSecret, cfg.OAuthServers, httpClient)
	oc.Observe = mx.ObserveRefresh
	// The handlers enqueue bulk runs and the rules' runs on the engine,
	// which is built after them (its chores and workers are the handlers').
	queue := &jobQueue{}
	h, err := handlers.New(handlers.Config{
		BaseURL: cfg.BaseURL, JSURL: cfg.JSURL, AllowHTTP: cfg.AllowHTTP, Manifest: m,
		HistoryRetention: cfg.HistoryRetention, RequestTimeout: requestTimeout, UninstallGrace: cfg.UninstallGrace,
		TrustedProxies: cfg.TrustedProxies, ReadyTimeout: readyTimeout,
	}, handlers.Deps{Store: st, REST: rest, OAuth: oc, Keys: keys, Lang: bundle, Assets: assets, Logger: logger, Metrics: mx,
		Bulk: queue, Robots: queue})
	if err != nil {
		return err
	}

	srv := newServer(withDeadline(h.Engine(), requestTimeout+2*time.Second), 15*time.Second, 32<<10, logger)
	eng, err := newJobs(ctx, cfg.DatabaseURL, st, jobs.Config{Logger: logger, Observe: mx.ObserveChore,
		Chores: chores(st, h, cfg.HistoryRetention, keys.KeyID()), StartDelay: jobsStartDelay, Bulk: h, Robots: h})
	if err != nil {
		return err
	}
	queue.eng = eng
	errc := make(chan error, 2)
	if cfg.MetricsAddr != "" {
		msrv, mln, err := metricsServer(cfg.MetricsAddr, mx, logger)
		if err != nil {
			return err
		}
		// Closed last, after the app's server: the drain stays visible
		// to the scraper until the end.
		defer msrv.Close()
		go func() {
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics listener: %w", err)
			}
		}()
		logger.Info("serving metrics", "addr", mln.Addr().String(), "path", metrics.Path)
	}
	go func() { errc <- srv.Serve(ln) }()
	// The job engine migrates and starts beside the server, not before
	// it: the readiness probe asks only whether the store answers. It is
	// stopped (jobs in flight finish or are left for retry) before the
	// deferred store Close.
	eng.Start(ctx)
	defer eng.Stop() // an early return's release; the shutdown path reports its error
	serving := []any{"addr", ln.Addr().String()}
	if !*demo {
		// The demo names one URL only, the portal's (printed above): the
		// app's own page outside a portal just says to install it.
		serving = append(serving, "base_url", cfg.BaseURL.String())
	}
	logger.Info("serving", append(serving, "store", storeKind(cfg.DatabaseURL))...)

	select {
	case err := <-errc:
		return err
	case <-eng.Done():
		// It stops early only when it cannot start.
		if err := eng.Err(); err != nil {
			return err
		}
	case <-ctx.Done():
	}
	// First tell the load balancer (through /readyz) and keep serving for
	// ShutdownDrain, so no request meets a closed port; without keep-alive,
	// clients reconnect through the balancer to another instance.
	h.StartDraining()
	srv.SetKeepAlivesEnabled(false)
	if cfg.ShutdownDrain > 0 {
		logger.Info("draining", "for", cfg.ShutdownDrain.String())
		select {
		case <-time.After(cfg.ShutdownDrain):
		case err := <-errc:
			return err
		}
	}
	// Let in-flight requests (a removal in progress) finish, then the work
	// they left running (a refresh whose caller hung up), before the
	// deferred store Close: a rotated token pair must still be stored.
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := h.Drain(sctx); err != nil {
		return fmt.Errorf("shutdown: background work: %w", err)
	}
	// Stopping since ctx ended, beside the drain.
	if err := eng.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("shut down")
	return nil
}

// metricsServer listens on addr and serves only the scrape, on a server of
// its own: the public engine has no /metrics route, so no proxy in front
// of the app can publish the series by mistake.
func metricsServer(addr string, mx *metrics.Metrics, logger *slog.Logger) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, mx.Handler())
	return newServer(mux, 10*time.Second, 16<<10, logger), ln, nil
}

// newServer is an HTTP server with every timeout set (a slow client
// cannot hold a connection open) and its errors logged as JSON warnings.
func newServer(h http.Handler, read time.Duration, maxHeader int, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       read,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// requestTimeout bounds each request's upstream work, retries and a token
// refresh included. Bitrix24 lets one REST call run 60 s, far longer than
// anyone waits after a click: with it, the answer comes within 20 s even
// when the portal hangs (render and network included).
const requestTimeout = 15 * time.Second

// readyTimeout is how long /readyz waits for the database: a balancer
// probes every few seconds and must not pile probes up.
const readyTimeout = time.Second

// jobsStartDelay keeps the job engine's start (River's migration check,
// election, first fetches) out of the first answers' way: on two cores it
// added several milliseconds to the cold start. The chores run a moment
// later, still within River's own jittered start of the leader's work.
const jobsStartDelay = 250 * time.Millisecond

// withDeadline ends every request's context after d, so that no route —
// one that sets no deadline of its own included — waits on a hung portal
// longer than that. The handlers bound their upstream work by the shorter
// requestTimeout and still render within d.
func withDeadline(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// shutdownTimeout covers the longest in-flight request (requestTimeout)
// and the work it may leave running (a refresh, bounded by its own
// budget), and stays under the usual 30 s a process manager waits after
// SIGTERM before it kills.
const shutdownTimeout = 28 * time.Second

// openStore picks the backend from DATABASE_URL.
func openStore(ctx context.Context, dsn string, keys *secret.Keyring) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), keys)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, keys)
	}
	return nil, errors.New("DATABASE_URL must be sqlite:PATH or a postgres:// URL")
}

func storeKind(dsn string) string {
	kind, _, _ := strings.Cut(dsn, ":")
	return kind
}

func nonEmpty(b []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	return [][]byte{b}
}

// restLogger keeps the REST exchange log the Bitrix24 Market requires
// (requests and responses of server-side calls): method, portal, status
// and error code, and a batch's failed commands. One line per exchange.
// Tokens are never part of an Exchange.
func restLogger(logger *slog.Logger) func(context.Context, bitrix24.Exchange) {
	return func(ctx context.Context, x bitrix24.Exchange) {
		attrs := []any{"endpoint", x.Endpoint, "method", x.Method, "status", x.HTTPStatus, "duration_ms", x.Duration.Milliseconds()}
		if x.Waited > 0 {
			// Time spent in the app's own limiter, before the request was
			// sent: the sign that a portal's bucket is the bottleneck.
			attrs = append(attrs, "limit_wait_ms", float64(x.Waited.Microseconds())/1000)
		}
		if x.ErrorCode != "" {
			attrs = append(attrs, "error_code", x.ErrorCode)
		}
		if x.Err != nil {
			attrs = append(attrs, "err", x.Err.Error())
		}
		if len(x.Failed) > 0 {
			// A batch answers 200 when commands inside it failed: each
			// one's key and code, so the line does not read as a success.
			attrs = append(attrs, "failed_commands", x.Failed)
		}
		logger.InfoContext(ctx, "bitrix24 rest", attrs...)
	}
}
