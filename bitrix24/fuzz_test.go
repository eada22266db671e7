package bitrix24

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzDecodeBatch: the batch decoder (decodeBatch) never panics, whatever the portal
// (or something pretending to be it) sends.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(`{"result":{"result":{"a":true},"result_error":[],"result_total":[],"result_next":[]}}`)
	f.Add(`{"result":[],"result_error":{"a":{"error":"","error_description":"Not found"}}}`)
	f.Add(`{"result":[1,2],"result_total":{"a":"x"}}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		res, _, err := decodeBatch(json.RawMessage(s))
		if err == nil && res == nil {
			t.Fatal("nil result without error")
		}
	})
}

// FuzzID: ID decoding accepts only non-negative integers.
func FuzzID(f *testing.F) {
	for _, s := range []string{`1`, `"1"`, `"-1"`, `1e3`, `"0x10"`, `null`, `"１２"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var id ID
		if err := json.Unmarshal([]byte(s), &id); err == nil && id < 0 {
			t.Fatalf("negative ID from %q", s)
		}
	})
}

// FuzzNormalizeEndpoint: an accepted endpoint is canonical, https, has no
// user info, query or fragment, its path is /rest/, and normalising it
// again is a no-op.
func FuzzNormalizeEndpoint(f *testing.F) {
	for _, s := range []string{"https://x.bitrix24.com/rest/", "https://a@b/rest/", "https://127.0.0.1/rest/",
		"https://x.bitrix24.com.evil.example/rest/", "https://x.bitrix24.com%2F@evil/rest/", "HTTPS://X.COM/rest"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, host, err := NormalizeEndpoint(s, false)
		if err != nil {
			return
		}
		u, perr := url.Parse(ep)
		if perr != nil || u.Scheme != "https" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "/rest/" || u.Host != host {
			t.Fatalf("accepted %q as %q (host %q)", s, ep, host)
		}
		if strings.ContainsAny(host, "@/\\ ") {
			t.Fatalf("host %q", host)
		}
		again, host2, err := NormalizeEndpoint(ep, false)
		if err != nil || again != ep || host2 != host {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, ep, again, err)
		}
	})
}

// FuzzDecodeEnvelope (I5): the REST envelope decoder never panics, and
// its verdict is consistent: a success is HTTP 200 with a result and no
// error; a failure is a typed *Error carrying the HTTP status, or
// ErrBadResponse. IDs and results arrive in any JSON shape.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"result":true,"time":{"start":1,"finish":2,"duration":0.1,"operating":0,"operating_reset_at":1700000000}}`},
		{200, `{"result":{"ID":"5","TITLE":"x"}}`},
		{200, `{"result":[{"CONTACT_ID":1},{"CONTACT_ID":"2"}],"total":2,"next":50}`},
		{200, `{"result":false}`},
		{200, `{"result":null}`},
		{200, `{"time":{}}`},
		{200, `{"error":"ACCESS_DENIED","error_description":"Access denied."}`},
		{401, `{"error":"expired_token","error_description":"The access token provided has expired."}`},
		{400, `{"error":"","error_description":"Not found"}`},
		{503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`},
		{429, `{"error":"OPERATION_TIME_LIMIT","error_description":"x","time":{"operating_reset_at":"soon"}}`},
		{502, `<html><body>Bad Gateway</body></html>`},
		{200, `{"result":tr`},
		{200, `{"error":null,"result":1}`},
		{200, `{"error":5}`},
		{500, `{"result":true}`},
		{200, `[]`},
		{200, ``},
	}
	for _, s := range seeds {
		f.Add(s.status, s.body)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		env, err := decodeEnvelope("m", status, []byte(body))
		if err == nil {
			if env == nil || env.Result == nil || env.Error != nil || status != http.StatusOK {
				t.Fatalf("accepted HTTP %d %q as %+v", status, body, env)
			}
			if !json.Valid(env.Result) {
				t.Fatalf("result %q is not JSON", env.Result)
			}
			return
		}
		if env != nil {
			t.Fatalf("envelope with an error for %q", body)
		}
		var be *Error
		if errors.As(err, &be) {
			if be.HTTPStatus != status || be.Method != "m" {
				t.Fatalf("error %+v lost the status %d", be, status)
			}
			return
		}
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("untyped error %v for %q", err, body)
		}
	})
}
