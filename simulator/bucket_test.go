package simulator

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPortalBucketIsBitrix24s: a portal's request-intensity limit is
// Bitrix24's leaky bucket for its plan (limits.md: 50 at once, drained
// 2/s; Enterprise 250 and 5/s), and the request past it gets the recorded
// 503 QUERY_LIMIT_EXCEEDED (rest_query_limit_exceeded.json, held to the
// recording by TestSimulatorRESTErrorsAreAsRecorded).
func TestPortalBucketIsBitrix24s(t *testing.T) {
	s := newTestSim(t)
	for _, tc := range []struct {
		enterprise bool
		burst      int
		drain      float64
	}{{false, 50, 2}, {true, 250, 5}} {
		p, err := s.AddPortal(PortalOptions{Seed: true, Enterprise: tc.enterprise})
		require.NoError(t, err)
		tok := mustInstall(t, p)
		s.mu.Lock()
		assert.Equal(t, tc.burst, p.bucket.burst)
		assert.InDelta(t, tc.drain, p.bucket.drain, 1e-9)
		// Empty the bucket's history, then fill it but for one request:
		// the portal takes that one, and refuses the next. (Draining is
		// TestLeakyBucket's; slowed here so a slow machine cannot drain
		// room between the two requests.)
		p.bucket.level, p.bucket.drain = 0, 1e-6
		for range tc.burst - 1 {
			require.True(t, p.bucket.allow())
		}
		s.mu.Unlock()
		require.Equal(t, http.StatusOK, callJSON(t, p, "profile", tok.AccessToken, nil).Status, "the last of the burst")
		r := callJSON(t, p, "profile", tok.AccessToken, nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.Status)
		assert.Equal(t, "QUERY_LIMIT_EXCEEDED", r.errCode())
		assert.Equal(t, "Too many requests", r.errDesc())
	}
}
