// Package metrics holds the app's Prometheus series in a registry of its
// own (never the client library's global one, so tests and several apps
// in one process do not collide) and serves them for a scrape on the
// metrics listener (METRICS_ADDR), never on the public port.
//
// Every label value comes from a closed set: routes are gin's patterns,
// REST methods and batch keys are the app's own, error codes are mapped to
// the ones the app knows (anything else is "other"). No portal, member or
// user id is ever a label: their number is unbounded.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
)

// Namespace prefixes the app's own series.
const Namespace = "leadcontacts"

// Path is where the metrics listener serves the scrape.
const Path = "/metrics"

// Label values the app itself chooses.
const (
	// Unmatched is the route of a request that matched no route (404,
	// 405): the raw path would give anyone a new series per URL.
	Unmatched = "unmatched"
	// OutcomeOK is the outcome of a call that succeeded.
	OutcomeOK = "ok"
	// OutcomeOther is an error code the app does not know.
	OutcomeOther = "other"
)

// Kinds of coalesced flights (FlightJoined).
const (
	FlightRefresh = "refresh"
	FlightRemoval = "removal"
)

// Reasons of a request the REST client did not send (ObserveRefusal).
const (
	RefusedRateLimit      = "rate_limit"
	RefusedOperatingLimit = "operating_limit"
)

// latencyBuckets span a static asset (a millisecond) to a request that
// used its whole budget (the server answers within 20 s).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20}

// waitBuckets span a short queue to a click that waited out most of its
// 15 s budget on a full portal bucket.
var waitBuckets = []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 15}

// Metrics is the app's set of series. Its methods are safe for concurrent
// use; the zero value is not usable, call New.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	restRequests    *prometheus.CounterVec
	restDuration    *prometheus.HistogramVec
	batchErrors     *prometheus.CounterVec
	limiterWaits    prometheus.Observer
	limiterRefusals *prometheus.CounterVec
	refreshes       *prometheus.CounterVec
	refreshDuration prometheus.Observer
	flights         *prometheus.CounterVec
	choreRuns       *prometheus.CounterVec
	choreItems      *prometheus.CounterVec
	choreLast       *prometheus.GaugeVec
}

// New registers every series on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.httpRequests = f.counter("http_requests_total",
		"Inbound HTTP requests by route pattern, method and status.", "route", "method", "status")
	m.httpDuration = f.histogram("http_request_duration_seconds",
		"Time to answer an inbound HTTP request, by route pattern and method.", latencyBuckets, "route", "method")
	m.restRequests = f.counter("bitrix24_requests_total",
		"REST requests sent to portals, by REST method and outcome (ok, a Bitrix24 error code, unreachable, bad_response, moved, other).", "method", "outcome")
	m.restDuration = f.histogram("bitrix24_request_duration_seconds",
		"Time from sending a REST request to reading its answer, by REST method.", latencyBuckets, "method")
	m.batchErrors = f.counter("bitrix24_batch_command_errors_total",
		"Failed commands inside batches that were answered 200, by the command's REST method and error code.", "method", "code")
	m.limiterWaits = f.histogram("bitrix24_limiter_wait_seconds",
		"Waits of REST requests on the app's per-portal leaky bucket before they were sent (only requests that waited).", waitBuckets).WithLabelValues()
	m.limiterRefusals = f.counter("bitrix24_limiter_refusals_total",
		"REST requests not sent: the per-portal bucket could not admit them in time (rate_limit), or the portal blocked the method (operating_limit).", "reason")
	m.refreshes = f.counter("oauth_refreshes_total",
		"Token refresh requests sent to the OAuth server, by outcome (ok, invalid_grant, credentials_rejected, payment_required, unreachable, other).", "outcome")
	m.refreshDuration = f.histogram("oauth_refresh_duration_seconds",
		"Time a token refresh request to the OAuth server took.", latencyBuckets).WithLabelValues()
	m.flights = f.counter("flights_coalesced_total",
		"Requests that joined work already in flight instead of starting their own: a token refresh, or a removal (a double click).", "kind")
	m.choreRuns = f.counter("chore_runs_total",
		"Runs of the periodic chores (session and history sweeps, token reseal, reported uninstalls), by outcome (ok, error).", "chore", "outcome")
	m.choreItems = f.counter("chore_items_total",
		"Rows the periodic chores deleted or moved: expired sessions, old history entries, resealed tokens, uninstalled portals.", "chore")
	m.choreLast = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace,
		Name: "chore_last_success_timestamp_seconds",
		Help: "Unix time of each chore's last run without error."}, []string{"chore"})
	m.reg.MustRegister(m.choreLast,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Series that exist from the start read 0, not "no data", on a
	// dashboard and in rate().
	for _, r := range []string{RefusedRateLimit, RefusedOperatingLimit} {
		m.limiterRefusals.WithLabelValues(r)
	}
	for _, k := range []string{FlightRefresh, FlightRemoval} {
		m.flights.WithLabelValues(k)
	}
	m.refreshes.WithLabelValues(OutcomeOK)
	return m
}

// factory registers vectors under the app's namespace.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Registry is the registry the series live in (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the scrape. A collector that fails (a closed database)
// leaves its series out rather than failing the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// WatchDB exports the connection pool's sql.DBStats as the client
// library's go_sql_* series, labelled db_name=name ("sqlite", "postgres").
func (m *Metrics) WatchDB(db *sql.DB, name string) error {
	return m.reg.Register(collectors.NewDBStatsCollector(db, name))
}

// ObserveRequest counts one inbound request. route is gin's FullPath (the
// pattern, "" when none matched), never the path a client sent.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	if route == "" {
		route = Unmatched
	}
	method = httpMethod(method)
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// httpMethod bounds the method label: a client may send any token.
func httpMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return method
	}
	return "other"
}

// FlightJoined counts a caller that joined a flight of kind (FlightRefresh,
// FlightRemoval) instead of starting one.
func (m *Metrics) FlightJoined(kind string) { m.flights.WithLabelValues(kind).Inc() }

// ObserveExchange counts one REST request sent to a portal (give it to
// bitrix24.Options.Observe): its outcome, its time, its wait on the
// limiter, and the failed commands of a batch.
func (m *Metrics) ObserveExchange(_ context.Context, x bitrix24.Exchange) {
	m.restRequests.WithLabelValues(x.Method, restOutcome(x.Err)).Inc()
	m.restDuration.WithLabelValues(x.Method).Observe(x.Duration.Seconds())
	if x.Waited > 0 {
		m.limiterWaits.Observe(x.Waited.Seconds())
	}
	for _, f := range x.Failed {
		m.batchErrors.WithLabelValues(f.Method, knownCode(f.Code)).Inc()
	}
}

// ObserveRefusal counts a REST request the client did not send (give it
// to bitrix24.Options.Refused).
func (m *Metrics) ObserveRefusal(_ context.Context, r bitrix24.Refusal) {
	reason := RefusedRateLimit
	if errors.Is(r.Err, bitrix24.ErrOperationTimeLimit) {
		reason = RefusedOperatingLimit
	}
	m.limiterRefusals.WithLabelValues(reason).Inc()
	if r.Waited > 0 {
		m.limiterWaits.Observe(r.Waited.Seconds())
	}
}

// ObserveRefresh counts one refresh request sent to an OAuth server (give
// it to oauth.Client.Observe).
func (m *Metrics) ObserveRefresh(_ context.Context, err error, d time.Duration) {
	m.refreshes.WithLabelValues(refreshOutcome(err)).Inc()
	m.refreshDuration.Observe(d.Seconds())
}

// ObserveChore counts one run of a periodic chore named name (a fixed
// word such as "sweep_sessions") that handled n rows.
func (m *Metrics) ObserveChore(name string, n int64, err error) {
	if err != nil {
		m.choreRuns.WithLabelValues(name, "error").Inc()
		return
	}
	m.choreRuns.WithLabelValues(name, OutcomeOK).Inc()
	m.choreItems.WithLabelValues(name).Add(float64(max(n, 0)))
	m.choreLast.WithLabelValues(name).SetToCurrentTime()
}

// restOutcome is the outcome label of a REST exchange.
func restOutcome(err error) string {
	var be *bitrix24.Error
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &be):
		return knownCode(be.EffectiveCode())
	case errors.Is(err, bitrix24.ErrMoved):
		return "moved"
	case errors.Is(err, bitrix24.ErrBadResponse):
		return "bad_response"
	case errors.Is(err, bitrix24.ErrUnreachable):
		return "unreachable"
	}
	return OutcomeOther
}

// codes are the Bitrix24 error codes that become label values, spelt as
// the documentation spells them; any other code is OutcomeOther, since a
// portal could send any string.
var codes = func() map[string]string {
	m := map[string]string{}
	for _, e := range []*bitrix24.Error{
		bitrix24.ErrExpiredToken, bitrix24.ErrInvalidToken, bitrix24.ErrNoAuthFound,
		bitrix24.ErrAccessDenied, bitrix24.ErrNotFound, bitrix24.ErrInvalidArgument,
		bitrix24.ErrInsufficientScope, bitrix24.ErrInvalidCredentials, bitrix24.ErrUserAccess,
		bitrix24.ErrQueryLimitExceeded, bitrix24.ErrOperationTimeLimit, bitrix24.ErrOverloadLimit,
		bitrix24.ErrPortalDeleted, bitrix24.ErrPaymentRequired, bitrix24.ErrMethodNotFound,
		bitrix24.ErrMethodConfirmWait, bitrix24.ErrWrongAuthType, bitrix24.ErrHandlerAlreadyBound,
		bitrix24.ErrInternal,
		// Codes the app does not branch on but a portal sends (recorded):
		// a rebind's "Handler already binded" and malformed requests.
		{Code: "ERROR_CORE"}, {Code: "INVALID_REQUEST"}, {Code: "ERROR_BATCH_LENGTH_EXCEEDED"},
		{Code: "ERROR_BATCH_METHOD_NOT_ALLOWED"},
	} {
		m[strings.ToUpper(e.Code)] = e.Code
	}
	return m
}()

// knownCode maps a Bitrix24 error code to its label value.
func knownCode(code string) string {
	if c, ok := codes[strings.ToUpper(code)]; ok {
		return c
	}
	return OutcomeOther
}

// refreshOutcome is the outcome label of a token refresh.
func refreshOutcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, oauth.ErrInvalidGrant):
		return "invalid_grant"
	case oauth.CredentialsRejected(err):
		return "credentials_rejected"
	case errors.Is(err, oauth.ErrPaymentRequired):
		return "payment_required"
	case errors.Is(err, oauth.ErrUnreachable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "unreachable"
	}
	return OutcomeOther
}
