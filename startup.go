package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// usage prints the flags and every environment variable with its default
// (from loadConfig itself) and its description (from app.json), for -h.
func usage(w io.Writer, flags *flag.FlagSet) error {
	var doc struct {
		Env map[string]struct {
			Description string `json:"description"`
			Required    bool   `json:"required"`
		} `json:"env"`
	}
	if err := json.Unmarshal(appJSON, &doc); err != nil {
		return fmt.Errorf("app.json: %w", err)
	}
	var b strings.Builder
	b.WriteString("Usage: leadcontacts [-demo]\n\n" +
		"Serves the Contacts cleanup Bitrix24 app. Everything else is configured in the environment.\n\nFlags:\n")
	flags.VisitAll(func(f *flag.Flag) { fmt.Fprintf(&b, "  -%s\n      %s\n", f.Name, f.Usage) })
	b.WriteString("  -h\n      print this help and exit\n\nEnvironment:\n")
	for _, v := range variables() {
		e := doc.Env[v.name]
		def := "default " + quoteDefault(v.def)
		switch {
		case e.Required:
			def = "required"
		case v.name == "ADDR":
			def += `, or ":$PORT" when PORT is set`
		}
		fmt.Fprintf(&b, "  %s (%s)\n      %s\n", v.name, def, e.Description)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteDefault(s string) string {
	if s == "" {
		return "empty"
	}
	return fmt.Sprintf("%q", s)
}

// checkSQLiteVolume refuses a SQLite database whose directory is missing
// or not writable, before anything is opened. Creating the directory, as
// the store would, puts every install on a disk that the next deploy or
// container restart wipes (the default DATABASE_URL names data/, which
// must be a persistent volume); a read-only one fails later, at the first
// install, with a driver error nobody reads as "mount a volume".
func checkSQLiteVolume(dsn string) error {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok || path == ":memory:" {
		return nil
	}
	dir := filepath.Dir(path)
	fix := "mount a persistent, writable volume there (or create the directory, writable by this user), " +
		"or point DATABASE_URL elsewhere (sqlite:PATH or postgres://...)"
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("DATABASE_URL %s: the directory %s does not exist: %s", dsn, dir, fix)
	case err != nil:
		return fmt.Errorf("DATABASE_URL %s: the directory %s cannot be read (%v): %s", dsn, dir, err, fix)
	case !fi.IsDir():
		return fmt.Errorf("DATABASE_URL %s: %s is not a directory: %s", dsn, dir, fix)
	}
	// SQLite writes the -wal and -shm files next to the database, so the
	// directory itself must take new files.
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("DATABASE_URL %s: the directory %s is read-only for this process (%v): %s", dsn, dir, unwrapPath(err), fix)
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	if _, err := os.Stat(path); err == nil {
		f, err := os.OpenFile(path, os.O_RDWR, 0) // #nosec G304 -- the operator's DATABASE_URL, not request input
		if err != nil {
			return fmt.Errorf("DATABASE_URL %s: the database file is read-only for this process (%v): %s", dsn, unwrapPath(err), fix)
		}
		_ = f.Close()
	}
	return nil
}

// unwrapPath drops the *PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
