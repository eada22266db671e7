package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
)

// F6: every way a refresh can fail on the wire — the client's own timeout
// (not the caller's deadline), a closed connection, an error page that
// quotes the request back — yields an error without the client secret or
// the refresh token, because both travel in the POST body, never in the
// URL that Go puts into transport errors.
func TestRefreshErrorsCarryNoSecret(t *testing.T) {
	const refresh = "sentinel-refresh-token-77"
	var (
		mu       sync.Mutex
		gotQuery []string
	)
	record := func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotQuery = append(gotQuery, r.URL.RawQuery)
	}
	echo := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		record(r)
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write(append([]byte("<html>you sent: "), body...))
	}
	cases := map[string]http.HandlerFunc{
		"client timeout": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			record(r)
			<-r.Context().Done()
		},
		"connection closed": func(w http.ResponseWriter, r *http.Request) {
			record(r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		},
		"error page echoing the request": echo,
		"oauth error echoing the request": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			record(r)
			form, _ := url.ParseQuery(string(body))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"bad token ` + form.Get("refresh_token") + ` for ` + form.Get("client_secret") + `"}`))
		},
	}
	for name, handler := range cases {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			gotQuery = nil
			mu.Unlock()
			srv := httptest.NewServer(handler)
			defer srv.Close()
			c := oauth.New("app.1", secret.New(clientSecret), []string{srv.URL}, bitrix24.NewHTTPClient(true))
			c.Timeout = 200 * time.Millisecond // the client's own limit fires, not the caller's
			_, err := c.Refresh(context.Background(), srv.URL, secret.New(refresh))
			require.Error(t, err)
			for _, s := range []string{clientSecret, refresh} {
				assert.NotContains(t, err.Error(), s)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, gotQuery, 1)
			assert.Empty(t, gotQuery[0], "nothing in the token URL's query")
		})
	}
}
