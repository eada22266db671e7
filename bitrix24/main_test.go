package bitrix24

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: a
// request that outlives its deadline, a retry timer, a body reader. Every
// test server is closed by its test, which also ends the client side of
// its kept-alive connections, so nothing needs to be ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
