package bitrix24

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
)

// recorder keeps what a Client reports through Observe and Refused.
type recorder struct {
	mu        sync.Mutex
	exchanges []Exchange
	refusals  []Refusal
}

func (r *recorder) options(o Options) Options {
	o.Observe = func(_ context.Context, x Exchange) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.exchanges = append(r.exchanges, x)
	}
	o.Refused = func(_ context.Context, x Refusal) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.refusals = append(r.refusals, x)
	}
	return o
}

// A batch answered 200 whose commands failed reports them in its one
// Exchange, in the order sent, with their effective codes: the REST log
// line of the exchange must not read as a success.
func TestBatchExchangeNamesFailedCommands(t *testing.T) {
	const body = `{"result":{"result":{"app":{"ID":"1"}},
		"result_error":{"lead":{"error":"","error_description":"Not found"},
		"items":{"error":"ACCESS_DENIED","error_description":"Access denied."},
		"odd":{"error":"","error_description":"Something else"}},
		"result_total":[],"result_next":[],"result_time":[]},"time":{}}`
	srv, _, _ := fakePortal(t, http.StatusOK, body)
	var rec recorder
	c := New(rec.options(Options{HTTPClient: NewHTTPClient(true)}))
	res, err := c.Batch(t.Context(), srv.URL+"/rest/", secret.New("tok"), false, []Cmd{
		{Key: "app", Method: "app.info"},
		{Key: "odd", Method: "crm.contact.list"},
		{Key: "lead", Method: "crm.item.get"},
		{Key: "items", Method: "crm.lead.contact.items.get"},
	})
	require.NoError(t, err)
	require.ErrorIs(t, res.Err("lead"), ErrNotFound)
	require.Len(t, rec.exchanges, 1, "one exchange, one report")
	x := rec.exchanges[0]
	assert.Equal(t, http.StatusOK, x.HTTPStatus)
	assert.Empty(t, x.ErrorCode)
	assert.NoError(t, x.Err)
	assert.Equal(t, []CmdError{
		{Key: "odd", Method: "crm.contact.list", Description: "Something else"},
		{Key: "lead", Method: "crm.item.get", Code: "NOT_FOUND"},
		{Key: "items", Method: "crm.lead.contact.items.get", Code: "ACCESS_DENIED"},
	}, x.Failed)
	assert.Empty(t, rec.refusals)

	// An unreadable batch answer fails the exchange it came in.
	srv, _, _ = fakePortal(t, http.StatusOK, `{"result":{"result":"nope"}}`)
	_, err = c.Batch(t.Context(), srv.URL+"/rest/", secret.New("tok"), false, []Cmd{{Key: "a", Method: "app.info"}})
	require.ErrorIs(t, err, ErrBadResponse)
	require.Len(t, rec.exchanges, 2)
	assert.ErrorIs(t, rec.exchanges[1].Err, ErrBadResponse)
}

// A request the client does not send is reported to Refused, never to
// Observe (no exchange took place): the limiter's refusal with its wait,
// and a method the portal blocked.
func TestRefusalsAreReportedApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		f := &fakeTransport{answer: func(int, *http.Request) (int, string) { return 200, `{"result":true}` }}
		c := fakeClient(f, rec.options(Options{PortalRate: 1, PortalBurst: 1}))
		ep := "https://a.bitrix24.com/rest/"
		require.NoError(t, c.Call(t.Context(), ep, secret.New("t"), "m", nil, nil))
		short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		err := c.Call(short, ep, secret.New("t"), "m", nil, nil)
		require.ErrorIs(t, err, ErrRateLimited)
		require.Len(t, rec.exchanges, 1)
		require.Len(t, rec.refusals, 1)
		assert.Equal(t, ep, rec.refusals[0].Endpoint)
		assert.Equal(t, "m", rec.refusals[0].Method)
		assert.ErrorIs(t, rec.refusals[0].Err, ErrRateLimited)

		// A blocked method: the portal says so once, then nothing is sent.
		f.answer = func(int, *http.Request) (int, string) { return http.StatusTooManyRequests, otl }
		time.Sleep(time.Second)
		require.ErrorIs(t, c.Call(t.Context(), ep, secret.New("t"), "slow", nil, nil), ErrOperationTimeLimit)
		time.Sleep(time.Second)
		err = c.Call(t.Context(), ep, secret.New("t"), "slow", nil, nil)
		require.ErrorIs(t, err, ErrOperationTimeLimit)
		assert.Len(t, rec.exchanges, 2, "the blocked call was not sent")
		require.Len(t, rec.refusals, 2)
		assert.Equal(t, "slow", rec.refusals[1].Method)
		assert.ErrorIs(t, rec.refusals[1].Err, ErrOperationTimeLimit)
	})
}
