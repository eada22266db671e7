package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBatchResultReferenceAndEmptySections(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{
		"halt": 0,
		"cmd": map[string]any{
			// encoding/json sorts keys: "a_lead" runs first.
			"a_lead":    "crm.lead.get?id=1",
			"b_contact": "crm.contact.get?id=$result[a_lead][CONTACT_ID]",
		},
	})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	res := r.Body["result"].(map[string]any)
	results := res["result"].(map[string]any)
	assert.Equal(t, "Анна", results["b_contact"].(map[string]any)["NAME"], "contact 2 is lead 1's primary")
	// Empty sections are JSON [] (PHP's empty array), not {}.
	assert.Equal(t, []any{}, res["result_error"])
	assert.Equal(t, []any{}, res["result_total"])
	assert.Equal(t, []any{}, res["result_next"])
	assert.Contains(t, res["result_time"], "a_lead")
	assert.Contains(t, r.Body, "time")

	// Sub-calls are recorded individually after the batch request.
	calls := p.Calls()
	require.Len(t, calls, 3)
	assert.Equal(t, "batch", calls[0].Method)
	assert.False(t, calls[0].Batch)
	assert.Equal(t, Call{Time: calls[2].Time, Method: "crm.contact.get", Batch: true, BatchKey: "b_contact", UserID: SeedAdmin,
		TokenPrefix: tok.AccessToken[:4], Params: url.Values{"id": {"2"}}, HTTPStatus: 200}, calls[2])
}

// TestBatchUnresolvedReferenceUsesTheDeepestPart follows the recording
// (CRestUtil::processBatchElement): a reference past the end of a list
// hands the method the whole list, and crm.contact.get reads an array id
// as PHP's intval, 1, so it fetches contact #1.
func TestBatchUnresolvedReferenceUsesTheDeepestPart(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"cmd": map[string]any{
		// Keys in order: Go encodes a map's keys sorted.
		"a_items":  "crm.lead.contact.items.get?id=" + strconv.Itoa(SeedLeadThreeContacts),
		"b_c0":     "crm.contact.get?id=$result[a_items][0][CONTACT_ID]",
		"c_c5":     "crm.contact.get?id=$result[a_items][5][CONTACT_ID]",
		"d_inline": "crm.contact.get?id=x$result[a_items][5][CONTACT_ID]",
	}})
	require.Equal(t, http.StatusOK, r.Status)
	res := r.Body["result"].(map[string]any)["result"].(map[string]any)
	items := res["a_items"].([]any)
	require.Len(t, items, 3)
	first := items[0].(map[string]any)["CONTACT_ID"]
	assert.Equal(t, fmt.Sprint(first), fmt.Sprint(res["b_c0"].(map[string]any)["ID"]))
	require.Contains(t, res, "c_c5", "%s", r.Raw)
	assert.Equal(t, "1", fmt.Sprint(res["c_c5"].(map[string]any)["ID"]), "item 5 of 3 yields the list, read as id 1")
	errs := r.Body["result"].(map[string]any)["result_error"].(map[string]any)
	assert.Contains(t, errs, "d_inline", "inside a longer string the reference stays as written and the id is invalid")
	calls := p.CallsTo("crm.contact.get")
	require.Len(t, calls, 3)
	assert.Equal(t, "x$result[a_items][5][CONTACT_ID]", calls[2].Params.Get("id"))
}

func TestBatchHaltAndErrors(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	tok := p.IssueTokens(SeedViewer).AccessToken
	cmd := map[string]any{
		"a_ok":     "crm.lead.contact.items.get?id=2",
		"b_denied": "crm.lead.contact.items.delete?id=2",
		"c_never":  "crm.lead.get?id=2",
	}
	// encoding/json sorts map keys, so the order is a, b, c.
	r := callJSON(t, p, "batch", tok, map[string]any{"halt": 1, "cmd": cmd})
	require.Equal(t, http.StatusOK, r.Status, "batch answers 200 whatever the sub-calls do")
	res := r.Body["result"].(map[string]any)
	assert.Contains(t, res["result"], "a_ok")
	assert.NotContains(t, res["result"], "c_never")
	errs := res["result_error"].(map[string]any)
	assert.Equal(t, "ACCESS_DENIED", errs["b_denied"].(map[string]any)["error"])
	assert.NotContains(t, errs, "c_never")

	r = callJSON(t, p, "batch", tok, map[string]any{"halt": 0, "cmd": cmd})
	assert.Contains(t, r.Body["result"].(map[string]any)["result"], "c_never")

	// Nested batch and unknown methods fail per sub-call.
	r = callJSON(t, p, "batch", tok, map[string]any{"cmd": []string{"batch?cmd[x]=profile", "nope.method", "profile"}})
	require.Equal(t, http.StatusOK, r.Status)
	res = r.Body["result"].(map[string]any)
	// Like PHP's json_encode, keys 0..n-1 make a list, others an object.
	errList := res["result_error"].([]any)
	assert.Equal(t, "ERROR_BATCH_METHOD_NOT_ALLOWED", errList[0].(map[string]any)["error"])
	assert.Equal(t, "ERROR_METHOD_NOT_FOUND", errList[1].(map[string]any)["error"])
	assert.Contains(t, res["result"], "2")
	sub := p.CallsTo("batch")
	assert.Equal(t, 405, sub[len(sub)-1].HTTPStatus, "nested batch sub-call recorded with 405")
}

func TestBatchListCommandsGiveListSections(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callForm(t, p, "batch", url.Values{"auth": {tok.AccessToken}, "cmd[]": {"profile", "crm.contact.list?filter%5B%40ID%5D%5B%5D=1"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	res := r.Body["result"].(map[string]any)
	list := res["result"].([]any)
	require.Len(t, list, 2)
	assert.Equal(t, "Alice", list[0].(map[string]any)["NAME"])
	assert.Equal(t, map[string]any{"1": jsonNum(1)}, res["result_total"], "a total only for key 1 is an object")
}

func jsonNum(n int) any { return jsonNumber(strconv.Itoa(n)) }

func TestBatchLimitsAndAuth(t *testing.T) {
	s, p, tok := newInstalledPortal(t)
	cmd := map[string]any{}
	for i := 0; i < 51; i++ {
		cmd["c"+strconv.Itoa(i)] = "profile"
	}
	r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"cmd": cmd})
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "ERROR_BATCH_LENGTH_EXCEEDED", r.errCode())

	// An expired token fails the whole request at the HTTP level.
	s.Advance(61 * time.Minute)
	r = callJSON(t, p, "batch", tok.AccessToken, map[string]any{"cmd": map[string]any{"p": "profile"}})
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "expired_token", r.errCode())
}
