output "edges" {
  description = "Each edge: its public address, the URL clients use, its instance."
  value = {
    for id, n in module.node : id => {
      public_ip   = n.public_ip
      url         = var.edges[id].url
      instance_id = n.instance_id
    }
  }
}
