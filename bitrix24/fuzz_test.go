package bitrix24

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// FuzzDecodeBatch: the batch decoder never panics, whatever the portal
// (or something pretending to be it) sends.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(`{"result":{"result":{"a":true},"result_error":[],"result_total":[],"result_next":[]}}`)
	f.Add(`{"result":[],"result_error":{"a":{"error":"","error_description":"Not found"}}}`)
	f.Add(`{"result":[1,2],"result_total":{"a":"x"}}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		res, err := DecodeBatch(json.RawMessage(s))
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
