package metrics

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
)

// nopConnector lets sql.OpenDB build a pool whose stats can be read; it
// never connects.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database here")
}
func (nopConnector) Driver() driver.Driver { return nil }

// newExercised returns Metrics with every series observed at least once
// (a vector shows no series until it has one) and a pool watched.
func newExercised(t *testing.T) *Metrics {
	t.Helper()
	m := New()
	_ = m.Handler() // registers the scrape's own error counter
	db := sql.OpenDB(nopConnector{})
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, m.WatchDB(db, "sqlite"))
	m.ObserveRequest(http.MethodPost, "/placements/lead-tab", http.StatusOK, 30*time.Millisecond)
	ctx := context.Background()
	m.ObserveExchange(ctx, bitrix24.Exchange{Method: "batch", HTTPStatus: 200, Duration: time.Millisecond,
		Waited: time.Second, Failed: []bitrix24.CmdError{{Key: "lead", Method: "crm.item.get", Code: "NOT_FOUND"}}})
	m.ObserveRefusal(ctx, bitrix24.Refusal{Method: "batch", Err: bitrix24.ErrRateLimited})
	m.ObserveRefresh(ctx, nil, time.Millisecond)
	m.FlightJoined(FlightRemoval)
	m.ObserveChore("sweep_sessions", 3, nil)
	return m
}

// families gathers the registry; names lists every name a query may use
// for them: a histogram's _bucket, _sum and _count, a summary's _sum and
// _count, and the family's own name.
func families(t *testing.T, m *Metrics) (map[string]*dto.MetricFamily, map[string]bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	names := map[string]bool{}
	for _, f := range fams {
		byName[f.GetName()] = f
		names[f.GetName()] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		case dto.MetricType_SUMMARY:
			for _, s := range []string{"_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return byName, names
}

// Label values come from closed sets, whatever a client or a portal
// sends: no raw path, no stray method, no unknown error code.
func TestLabelsStayBounded(t *testing.T) {
	m := New()
	m.ObserveRequest("PROPFIND", "", http.StatusMethodNotAllowed, time.Millisecond)
	ctx := context.Background()
	for _, err := range []error{
		nil,
		&bitrix24.Error{Code: "expired_token", HTTPStatus: 401},
		&bitrix24.Error{Code: "Query_Limit_Exceeded", HTTPStatus: 503},
		&bitrix24.Error{Code: "", Description: "Not found"},
		&bitrix24.Error{Code: "SOME_NEW_CODE_" + strings.Repeat("x", 40)},
		fmt.Errorf("x: %w", bitrix24.ErrUnreachable),
		fmt.Errorf("x: %w", bitrix24.ErrBadResponse),
		&bitrix24.MovedError{HTTPStatus: 301},
		errors.New("anything"),
	} {
		m.ObserveExchange(ctx, bitrix24.Exchange{Method: "batch", Err: err})
	}
	m.ObserveExchange(ctx, bitrix24.Exchange{Method: "batch", Failed: []bitrix24.CmdError{{Method: "crm.item.get", Code: "made up"}}})
	for _, err := range []error{nil, oauth.ErrInvalidGrant, oauth.ErrWrongClient, oauth.ErrPaymentRequired,
		fmt.Errorf("x: %w", oauth.ErrUnreachable), context.DeadlineExceeded, &oauth.Error{Code: "new"}} {
		m.ObserveRefresh(ctx, err, time.Millisecond)
	}
	m.ObserveRefusal(ctx, bitrix24.Refusal{Err: &bitrix24.Error{Code: "OPERATION_TIME_LIMIT"}})

	fams, _ := families(t, m)
	got := func(family, label string) []string {
		var out []string
		for _, s := range fams[family].GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					out = append(out, l.GetValue())
				}
			}
		}
		return out
	}
	assert.Equal(t, []string{"unmatched"}, got("leadcontacts_http_requests_total", "route"))
	assert.Equal(t, []string{"other"}, got("leadcontacts_http_requests_total", "method"))
	assert.ElementsMatch(t, []string{"ok", "expired_token", "QUERY_LIMIT_EXCEEDED", "NOT_FOUND", "other",
		"unreachable", "bad_response", "moved"}, got("leadcontacts_bitrix24_requests_total", "outcome"))
	assert.Equal(t, []string{"other"}, got("leadcontacts_bitrix24_batch_command_errors_total", "code"))
	assert.ElementsMatch(t, []string{"ok", "invalid_grant", "credentials_rejected", "payment_required", "unreachable", "other"},
		got("leadcontacts_oauth_refreshes_total", "outcome"))
	assert.ElementsMatch(t, []string{"rate_limit", "operating_limit"}, got("leadcontacts_bitrix24_limiter_refusals_total", "reason"))
}

// The scrape is the text format, with the app's series and the pool's.
func TestHandlerServesTheRegistry(t *testing.T) {
	m := newExercised(t)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var b strings.Builder
	_, err = fmt.Fprint(&b, resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	assert.Contains(t, b.String(), "text/plain")
	fams, _ := families(t, m)
	assert.Contains(t, fams, "go_sql_open_connections")
	assert.Contains(t, fams, "leadcontacts_chore_items_total")
}
