# A region's recorders: one machine each (modules/node) running
# deploy/systemd/geomesh-recorder.service, writing recordings under
# /var/lib/geomesh/recordings on a volume of its own that outlives the
# instance, so a replaced recorder keeps what it wrote.

resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV_AWS_189:Encrypted with the account's EBS key; a customer key adds cost and no reader.
  for_each          = var.recorders
  availability_zone = var.subnets[each.value.zone % length(var.subnets)].availability_zone
  size              = var.data_gb
  type              = "gp3"
  encrypted         = true

  tags = {
    Name = "${var.cluster}-${each.key}-recordings"
  }
}

module "node" {
  source   = "../node"
  for_each = var.recorders

  cluster           = var.cluster
  node_id           = each.key
  role              = "recorder"
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
    GEOMESH_OUT      = "/var/lib/geomesh/recordings"
    GEOMESH_ARGS     = join(" ", var.args)
    RUST_LOG         = "info"
  }

  bootstrap = {
    DATA_VOLUME = aws_ebs_volume.data[each.key].id
  }
}

resource "aws_volume_attachment" "data" {
  for_each    = var.recorders
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[each.key].id
  instance_id = module.node[each.key].instance_id
  # Stopping first lets the recorder close its files before the volume goes.
  stop_instance_before_detaching = true
}
