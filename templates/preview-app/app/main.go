// Command shop is the application the preview-app template's demo deploys: a small web server
// that lists a few customers of the environment's database, so a preview's URL shows that the
// environment works end to end (its image ran, it read the delivered Secret, it reached its
// own, anonymised, database).
//
// Configuration, from the environment (the delivered Secret and ConfigMap):
//
//	PORT          where to listen (default 8080)
//	DATABASE_URL  a PostgreSQL URL; when empty, libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD
//	DATABASE_NAME the database, overriding the URL's (the environment's own, envforge_<name>)
//
// GET /healthz answers 200 while the process runs; GET / lists the first customers, or answers
// 503 with one line naming the database it could not reach (never a password).
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const listed = 5

// password is the database password, kept out of every message.
var password string

func main() {
	config, err := pgx.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal("DATABASE_URL is not a PostgreSQL URL (its value is not shown: it may hold a password)")
	}
	if name := os.Getenv("DATABASE_NAME"); name != "" {
		config.Database = name
	}
	config.ConnectTimeout = 3 * time.Second
	password = config.Password
	where := fmt.Sprintf("%s:%d/%s", config.Host, config.Port, config.Database)

	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		page, err := customers(r.Context(), config)
		if err != nil {
			log.Printf("database %s: %s", where, redact(err.Error()))
			http.Error(w, fmt.Sprintf("database %s cannot be read: %s", where,
				redact(err.Error())), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, page)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Printf("shop listening on :%s, database %s", port, where)
	server := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(server.ListenAndServe())
}

// customers renders the first customers and how many there are, in one short connection.
func customers(ctx context.Context, config *pgx.ConnConfig) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var total int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM public.customers").Scan(&total); err != nil {
		return "", err
	}
	rows, err := conn.Query(ctx,
		"SELECT id, email, full_name FROM public.customers ORDER BY id LIMIT $1", listed)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var page strings.Builder
	fmt.Fprintf(&page, "customers of %s (%d in all, first %d):\n", config.Database, total, listed)
	for rows.Next() {
		var id int64
		var email, name string
		if err := rows.Scan(&id, &email, &name); err != nil {
			return "", err
		}
		fmt.Fprintf(&page, "%d\t%s\t%s\n", id, email, name)
	}
	return page.String(), rows.Err()
}

// redact drops the password, should a driver message ever quote it.
func redact(message string) string {
	if password != "" {
		message = strings.ReplaceAll(message, password, "***")
	}
	return message
}
