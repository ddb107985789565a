# A region's selectors: one machine each (modules/node) running
# deploy/systemd/geomesh-selector.service, its Raft store on a volume of
# its own that outlives the instance, so a replaced selector keeps its log
# and vote and rejoins as itself.

resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV_AWS_189:Encrypted with the account's EBS key; a customer key adds cost and no reader.
  for_each          = var.selectors
  availability_zone = var.subnets[each.value.zone % length(var.subnets)].availability_zone
  size              = var.data_gb
  type              = "gp3"
  encrypted         = true

  tags = {
    Name = "${var.cluster}-${each.key}-data"
  }
}

module "node" {
  source   = "../node"
  for_each = var.selectors

  cluster           = var.cluster
  node_id           = each.key
  role              = "selector"
  public_ip         = each.value.public_ip
  subnet_id         = var.subnets[each.value.zone % length(var.subnets)].id
  security_group_id = var.security_group_ids[each.key]
  instance_type     = var.instance_type
  image             = var.image
  release           = lookup(var.node_releases, each.key, var.release)
  topology          = var.topology
  files             = var.files[each.key]

  env = {
    GEOMESH_ID       = each.key
    GEOMESH_TOPOLOGY = "/etc/geomesh/topology.yaml"
    GEOMESH_CERTS    = "/etc/geomesh/${var.certs_dir}"
    GEOMESH_DATA     = "/var/lib/geomesh/selector"
    GEOMESH_ARGS     = join(" ", concat(each.value.init ? ["--init"] : [], var.args))
    RUST_LOG         = "info,openraft=warn"
  }

  bootstrap = {
    DATA_VOLUME = aws_ebs_volume.data[each.key].id
  }

  config_files = {
    "geoip.list" = join("", [for g in var.geoip : "${g.sha256} ${g.url} ${g.path}\n"])
  }
}

resource "aws_volume_attachment" "data" {
  for_each    = var.selectors
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[each.key].id
  instance_id = module.node[each.key].instance_id
  # Stopping first lets the selector shut down cleanly before the store goes.
  stop_instance_before_detaching = true
}
