# A region's edges: one machine each (modules/node) running
# deploy/systemd/geomesh-edge.service, with Caddy in front of the plain
# HTTP port when the edge's public URL is https://.

module "node" {
  source   = "../node"
  for_each = var.edges

  cluster           = var.cluster
  node_id           = each.key
  role              = "edge"
  public_ip         = each.value.public_ip
  subnet_id         = var.subnets[each.value.zone % length(var.subnets)].id
  security_group_id = var.security_group_ids[each.key]
  instance_type     = var.instance_type
  image             = var.image
  release           = lookup(var.node_releases, each.key, var.release)
  topology          = var.topology
  files             = var.files[each.key]
  packages          = each.value.tls_port > 0 ? ["caddy"] : []

  env = {
    GEOMESH_ID       = each.key
    GEOMESH_TOPOLOGY = "/etc/geomesh/topology.yaml"
    GEOMESH_CERTS    = "/etc/geomesh/${var.certs_dir}"
    # Behind Caddy every client comes from loopback: count the one it names.
    GEOMESH_ARGS = join(" ", concat(each.value.tls_port > 0 ? ["--trusted-proxy", "127.0.0.1/32"] : [], var.args))
    RUST_LOG     = "info"
  }

  bootstrap = {
    for k, v in {
      TLS_PORT  = tostring(each.value.tls_port)
      TLS_SITES = join(" ", each.value.tls_sites)
      HTTP_PORT = tostring(each.value.http_port)
    } : k => v if each.value.tls_port > 0
  }
}
