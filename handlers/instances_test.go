package handlers_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/handlers"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/static"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/postgres"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// restClient is the app's REST client in the test env. The outbound
// limiter is off unless a test sets restOptions: most tests count calls,
// not seconds; the limiter has its own tests.
func (e *testEnv) restClient(hc *http.Client, logger *slog.Logger) *bitrix24.Client {
	o := bitrix24.Options{HTTPClient: hc, Backoff: func(int) time.Duration { return time.Millisecond },
		PortalRate: rate.Inf,
		Observe: func(_ context.Context, x bitrix24.Exchange) {
			logger.Info("rest", "method", x.Method, "status", x.HTTPStatus, "err", x.Err)
		}}
	if e.restOptions != nil {
		e.restOptions(&o)
	}
	return bitrix24.New(o)
}

func (e *testEnv) oauthClient(hc *http.Client) handlers.OAuth {
	c := oauth.New(testClientID, secret.New(testClientSecret), []string{e.sim.OAuthURL()}, hc)
	if e.oauthTimeout > 0 {
		c.Timeout = e.oauthTimeout
	}
	if e.wrapOAuth != nil {
		return e.wrapOAuth(c)
	}
	return c
}

func (e *testEnv) handlerStore(st store.Store) store.Store {
	if e.wrapStore != nil {
		return e.wrapStore(st)
	}
	return st
}

func withREST(fn func(*bitrix24.Options)) envOption { return func(e *testEnv) { e.restOptions = fn } }

func withOAuthTimeout(d time.Duration) envOption { return func(e *testEnv) { e.oauthTimeout = d } }

func withStoreWrapper(fn func(store.Store) store.Store) envOption {
	return func(e *testEnv) { e.wrapStore = fn }
}

// withPostgres runs the env on PostgreSQL (a fresh schema) instead of the
// SQLite file; every instance of the env (addInstance) shares it.
func withPostgres() envOption {
	return func(e *testEnv) { withPostgresAt(storetest.FreshSchema(e.t, "handlers_"))(e) }
}

// withPostgresAt runs the env on the PostgreSQL database at dsn.
func withPostgresAt(dsn string) envOption {
	return func(e *testEnv) {
		e.openStore = func(t testing.TB, keys *secret.Keyring) store.Store {
			st, err := postgres.Open(context.Background(), dsn, keys)
			require.NoError(t, err)
			return st
		}
	}
}

// instance is one more app process: its own store connection pool, REST
// and OAuth clients and in-flight groups, on the env's database and
// behind its own listener, as a second replica behind a load balancer.
type instance struct {
	base string
	st   store.Store
	h    *handlers.Handlers
}

// addInstance starts another app instance on the env's database. It needs
// a shared database: PostgreSQL (withPostgres).
func (e *testEnv) addInstance() *instance {
	t := e.t
	require.NotNil(t, e.openStore, "several instances need PostgreSQL (withPostgres)")
	st := e.openStore(t, e.keys)
	in := &instance{st: st}
	in.h = e.newHandlers(st)
	srv := httptest.NewServer(in.h.Engine())
	in.base = srv.URL
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return in
}

// newHandlers builds handlers like start does, on st.
func (e *testEnv) newHandlers(st store.Store) *handlers.Handlers {
	t := e.t
	hc := bitrix24.NewHTTPClient(true)
	t.Cleanup(hc.CloseIdleConnections)
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	base, _ := url.Parse(e.base)
	h, err := handlers.New(handlers.Config{
		BaseURL: base, JSURL: e.sim.JSURL(), AllowHTTP: true, Manifest: e.m, RequestTimeout: e.timeout,
	}, handlers.Deps{
		Store: e.handlerStore(st), REST: e.restClient(hc, logger), OAuth: e.oauthClient(hc),
		Keys: e.keys, Lang: mustLang(t), Assets: mustAssets(t), Logger: logger, Now: e.clock.Now,
	})
	require.NoError(t, err)
	return h
}

// clickRemoveOn submits the removal as the tab's script does (to the
// form's data-action; a form without one posts to its action) to the app
// at base — another instance, as a load balancer may route the click.
func (e *testEnv) clickRemoveOn(base string, tab page) page {
	e.t.Helper()
	form := tab.doc.Find("#remove-form")
	action, ok := form.Attr("data-action")
	if !ok {
		action, ok = form.Attr("action")
	}
	require.True(e.t, ok, "tab has no remove form: %s", tab.body)
	return e.postForm(base+action, e.fields(form), "Sec-Fetch-Site", "same-origin", "Origin", e.base)
}

// failingWrites fails the first n session-token writes, as a database that
// drops a connection at the worst moment: after the OAuth server rotated
// the pair.
type failingWrites struct {
	store.Store
	left atomic.Int32
}

func (f *failingWrites) UpdateSessionTokens(ctx context.Context, id string, version int64, access, refresh secret.String) error {
	if f.left.Add(-1) >= 0 {
		return errInjected
	}
	return f.Store.UpdateSessionTokens(ctx, id, version, access, refresh)
}

type injectedError struct{}

func (injectedError) Error() string { return "injected: database connection lost" }

var errInjected error = injectedError{}

// okStatus reports whether every status is 200.
func allOK(statuses []int) bool {
	for _, s := range statuses {
		if s != http.StatusOK {
			return false
		}
	}
	return true
}

// refreshesOK counts the successful refreshes at the OAuth server after
// mark, and returns every error code it answered.
func refreshesSince(e *testEnv, mark int) (ok int, errs []string) {
	for _, r := range e.sim.Refreshes()[mark:] {
		if r.GrantType != "refresh_token" {
			continue
		}
		if r.Status == http.StatusOK {
			ok++
		} else {
			errs = append(errs, strings.TrimSpace(r.Error))
		}
	}
	return ok, errs
}

func mustLang(t testing.TB) *lang.Bundle {
	t.Helper()
	b, err := lang.Load()
	require.NoError(t, err)
	return b
}

func mustAssets(t testing.TB) *static.Assets {
	t.Helper()
	a, err := static.Load()
	require.NoError(t, err)
	return a
}
