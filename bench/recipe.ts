/**
 * distribution's nginx recipe (docs/content/recipes/nginx.md, "Authenticate proxy with nginx"),
 * the peer the proxy is compared with. Kept as published except:
 * - no `auth_basic`/`auth_basic_user_file`: the throughput part runs without auth on every
 *   path, so credential checks do not blur the transfer cost;
 * - listen port, server_name, certificate paths and upstream host are the bench's.
 * Everything else is the recipe's, including what it leaves at nginx's defaults:
 * worker_processes 1, HTTP/1.0 to the upstream without keepalive, proxy_request_buffering on,
 * proxy_buffering on with 8 × 4k/8k buffers, proxy_max_temp_file_size 1024m, sendfile off,
 * temp files in the compiled-in paths (the container's writable layer, like ours in /tmp).
 */
export interface RecipeInput {
  readonly listenPort: number;
  readonly serverName: string;
  readonly upstream: { readonly host: string; readonly port: number };
  readonly certificatePath: string;
  readonly keyPath: string;
}

export function renderRecipeConf(r: RecipeInput): string {
  return `events {
    worker_connections  1024;
}

http {

  upstream docker-registry {
    server ${r.upstream.host}:${r.upstream.port};
  }

  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
    '' 'registry/2.0';
  }

  server {
    listen ${r.listenPort} ssl;
    server_name ${r.serverName};

    # SSL
    ssl_certificate ${r.certificatePath};
    ssl_certificate_key ${r.keyPath};

    ssl_protocols TLSv1.1 TLSv1.2;
    ssl_ciphers 'EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH';
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;

    client_max_body_size 0;

    chunked_transfer_encoding on;

    location /v2/ {
      if ($http_user_agent ~ "^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$" ) {
        return 404;
      }

      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;

      proxy_pass                          http://docker-registry;
      proxy_set_header  Host              $http_host;
      proxy_set_header  X-Real-IP         $remote_addr;
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;
    }
  }
}
`;
}
