// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-mapping.h>
#include <linux/etherdevice.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>

__rust_helper void *rust_helper_netdev_priv(const struct net_device *dev)
{
	return netdev_priv(dev);
}

__rust_helper void rust_helper_eth_hw_addr_set(struct net_device *dev,
					       const u8 *addr)
{
	eth_hw_addr_set(dev, addr);
}

__rust_helper bool rust_helper_netif_running(const struct net_device *dev)
{
	return netif_running(dev);
}

__rust_helper bool rust_helper_netif_carrier_ok(const struct net_device *dev)
{
	return netif_carrier_ok(dev);
}

__rust_helper void rust_helper_netif_start_queue(struct net_device *dev)
{
	netif_start_queue(dev);
}

__rust_helper void rust_helper_netif_stop_queue(struct net_device *dev)
{
	netif_stop_queue(dev);
}

__rust_helper void rust_helper_netif_wake_queue(struct net_device *dev)
{
	netif_wake_queue(dev);
}

__rust_helper bool rust_helper_netif_queue_stopped(const struct net_device *dev)
{
	return netif_queue_stopped(dev);
}

__rust_helper bool rust_helper_netdev_xmit_more(void)
{
	return netdev_xmit_more();
}

__rust_helper void rust_helper_netif_napi_add(struct net_device *dev,
					      struct napi_struct *napi,
					      int (*poll)(struct napi_struct *, int))
{
	netif_napi_add(dev, napi, poll);
}

__rust_helper bool rust_helper_napi_schedule(struct napi_struct *n)
{
	return napi_schedule(n);
}

__rust_helper gro_result_t rust_helper_napi_gro_receive(struct napi_struct *napi,
							struct sk_buff *skb)
{
	return napi_gro_receive(napi, skb);
}

__rust_helper void rust_helper_dev_kfree_skb_any(struct sk_buff *skb)
{
	dev_kfree_skb_any(skb);
}

__rust_helper unsigned int rust_helper_skb_headlen(const struct sk_buff *skb)
{
	return skb_headlen(skb);
}

__rust_helper int rust_helper_skb_tailroom(const struct sk_buff *skb)
{
	return skb_tailroom(skb);
}

/* skb->protocol sits in a struct_group that bindgen makes anonymous. */
__rust_helper void rust_helper_skb_set_protocol(struct sk_buff *skb,
					       __be16 protocol)
{
	skb->protocol = protocol;
}

/* skb->dev shares a union with dev_scratch, which bindgen makes anonymous. */
__rust_helper void rust_helper_skb_set_dev(struct sk_buff *skb,
					  struct net_device *dev)
{
	skb->dev = dev;
}

__rust_helper unsigned char *rust_helper_skb_mac_header(const struct sk_buff *skb)
{
	return skb_mac_header(skb);
}

__rust_helper void rust_helper_skb_reset_mac_header(struct sk_buff *skb)
{
	skb_reset_mac_header(skb);
}

__rust_helper void rust_helper_skb_set_network_header(struct sk_buff *skb,
						      const int offset)
{
	skb_set_network_header(skb, offset);
}

__rust_helper void *rust_helper_skb_put_data(struct sk_buff *skb,
					     const void *data, unsigned int len)
{
	return skb_put_data(skb, data, len);
}

__rust_helper int rust_helper_dev_queue_xmit(struct sk_buff *skb)
{
	return dev_queue_xmit(skb);
}

__rust_helper int rust_helper_skb_linearize(struct sk_buff *skb)
{
	return skb_linearize(skb);
}

__rust_helper dma_addr_t rust_helper_dma_map_single_attrs(struct device *dev,
							   void *ptr, size_t size,
							   enum dma_data_direction dir,
							   unsigned long attrs)
{
	return dma_map_single_attrs(dev, ptr, size, dir, attrs);
}

__rust_helper void rust_helper_dma_unmap_single_attrs(struct device *dev,
						      dma_addr_t addr, size_t size,
						      enum dma_data_direction dir,
						      unsigned long attrs)
{
	dma_unmap_single_attrs(dev, addr, size, dir, attrs);
}

__rust_helper int rust_helper_dma_mapping_error(struct device *dev,
						dma_addr_t dma_addr)
{
	return dma_mapping_error(dev, dma_addr);
}

__rust_helper bool rust_helper___netdev_sent_queue(struct net_device *dev,
						   unsigned int bytes,
						   bool xmit_more)
{
	return __netdev_sent_queue(dev, bytes, xmit_more);
}

__rust_helper void rust_helper_netdev_completed_queue(struct net_device *dev,
						      unsigned int pkts,
						      unsigned int bytes)
{
	netdev_completed_queue(dev, pkts, bytes);
}

__rust_helper void rust_helper_netdev_reset_queue(struct net_device *dev)
{
	netdev_reset_queue(dev);
}
