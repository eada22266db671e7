package handlers_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// refresh or removal flight that outlives its budget, a request stuck on
// a hanging portal, a timer. Every env closes its servers, stores and
// connection pools in its cleanups, so nothing needs to be ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
