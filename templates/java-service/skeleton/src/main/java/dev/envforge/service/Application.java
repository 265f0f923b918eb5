package dev.envforge.service;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/** The ${{ values.name }} HTTP service: {@code /} greets, {@code /healthz} answers the probes. */
public final class Application {

    public static final String SERVICE_NAME = "${{ values.name }}";
    static final int DEFAULT_PORT = ${{ values.port }};

    private Application() {
    }

    /** Creates (but does not start) a server bound to host:port; port 0 picks a free one. */
    public static HttpServer createServer(String host, int port) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 0);
        server.createContext("/healthz", exchange -> respond(exchange, 200, "{\"status\":\"ok\"}"));
        server.createContext("/", Application::root);
        return server;
    }

    private static void root(HttpExchange exchange) throws IOException {
        String path = exchange.getRequestURI().getPath();
        if (!"/".equals(path)) {
            respond(exchange, 404, "{\"error\":\"not found\"}");
            return;
        }
        respond(exchange, 200, "{\"service\":\"" + SERVICE_NAME + "\",\"message\":\"Hello from "
                + SERVICE_NAME + "\"}");
    }

    private static void respond(HttpExchange exchange, int status, String json) throws IOException {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    /** Serves until the JVM is asked to stop; PORT and HOST come from the environment. */
    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", String.valueOf(DEFAULT_PORT)));
        String host = System.getenv().getOrDefault("HOST", "0.0.0.0");
        ExecutorService workers = Executors.newFixedThreadPool(8);
        HttpServer server = createServer(host, port);
        server.setExecutor(workers);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(1);
            workers.shutdown();
        }));
        server.start();
        System.out.println(SERVICE_NAME + " listening on " + host + ":" + server.getAddress().getPort());
    }
}
