// Command floor is the memory floor of the app's stack, for
// BenchmarkFloorRSS (footprint_test.go): the libraries the product fixes
// (gin, x/oauth2, gorilla/sessions, html/template, SQLite through
// modernc.org/sqlite, pgx) and the ones its issues name (Prometheus'
// client_golang, River), linked, initialised and used once each, with
// none of the app's own code. What the app's binary holds above this is
// the app's; what this holds is the price of the stack.
//
// It lives under testdata so that `go build ./...` and `go vet ./...`
// leave it out; the benchmark builds it by path.
//
//	floor ADDR SQLITE_FILE
package main

import (
	"database/sql"
	"html/template"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"golang.org/x/oauth2"
	_ "modernc.org/sqlite"
)

// page calls a method, as the app's templates do: text/template finds
// methods by name at run time, which keeps every exported method of the
// program in the binary.
type page struct{ Name string }

func (p page) Greeting(s string) string { return s + ", " + p.Name }

var tmpl = template.Must(template.New("p").Parse(`<!doctype html><p>{{.Greeting "Hello"}}</p>`))

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: floor ADDR SQLITE_FILE")
	}
	db, err := sql.Open("sqlite", os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	var one int
	if err := db.QueryRow(`SELECT 1`).Scan(&one); err != nil {
		log.Fatal(err)
	}
	if _, err := river.NewClient(riversqlite.New(db), &river.Config{}); err != nil {
		log.Fatal(err)
	}
	_ = stdlib.GetDefaultDriver()
	_ = sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	_ = (&oauth2.Config{}).AuthCodeURL("state")
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector())

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		c.Status(http.StatusOK)
		_ = tmpl.Execute(c.Writer, page{Name: "floor"})
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	srv := &http.Server{Addr: os.Args[1], Handler: r, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
