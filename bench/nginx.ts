import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const ACCESS_LOG_FORMAT = [
  '"time":"$time_iso8601"',
  '"remote_addr":"$remote_addr"',
  '"request":"$request"',
  '"status":$status',
  '"body_bytes_sent":$body_bytes_sent',
  '"request_time":$request_time',
  '"upstream_addr":"$upstream_addr"',
  '"upstream_connect_time":"$upstream_connect_time"',
  '"upstream_header_time":"$upstream_header_time"',
  '"upstream_response_time":"$upstream_response_time"',
  '"user_agent":"$http_user_agent"',
].join(',');

export const NGINX_ACCESS_LOG = 'access.log';

/** Writes nginx.conf into `dir` (also the prefix, log and temp directory) and returns nginx's argv. */
export async function nginxCommand(binary: string, dir: string, port: number, backendPort: number): Promise<string[]> {
  // The *_temp_path lines keep nginx out of the distribution's /var/lib/nginx.
  const conf = `worker_processes 1;
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  log_format bench escape=json '{${ACCESS_LOG_FORMAT}}';
  access_log ${join(dir, NGINX_ACCESS_LOG)} bench;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  return [
    binary,
    '-p', dir,
    '-e', join(dir, 'error.log'),
    '-c', confPath,
    '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`,
  ];
}
