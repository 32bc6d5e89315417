include $(sort $(wildcard $(BR2_EXTERNAL_GATEBOX_PATH)/package/*/*.mk))
