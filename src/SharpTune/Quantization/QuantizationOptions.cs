using System.Text.Json.Nodes;
using SharpTune.Engine;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// How to quantize a model's linear layers (transformers' <c>BitsAndBytesConfig</c>): 4-bit NF4/FP4 blocks of
/// <see cref="BlockSize"/> with optional double quantization of the block constants, or 8-bit per-row absmax.
/// </summary>
public sealed record QuantizationOptions
{
    public const string ConfigKey = "quantization_config";

    /// <summary>4 (NF4/FP4 blockwise) or 8 (int8 per-row absmax).</summary>
    public int Bits { get; init; } = 4;

    public FourBitType QuantType { get; init; } = FourBitType.Nf4;

    /// <summary>Quantizes the per-block absmax constants to 8 bits too (blocks of 256): ~0.37 bits per parameter less.</summary>
    public bool DoubleQuant { get; init; }

    /// <summary>The dtype weights are dequantized into for the matmul (bitsandbytes' default: float32).</summary>
    public ScalarType ComputeDType { get; init; } = ScalarType.Float32;

    public int BlockSize { get; init; } = 64;

    /// <summary>Linear layers kept in full precision, by name ("lm_head") or full path; transformers keeps the LM head.</summary>
    public IReadOnlyList<string> SkipModules { get; init; } = ["lm_head"];

    public void Validate()
    {
        if (Bits is not (4 or 8))
            throw new ArgumentException($"quantization bits must be 4 or 8, got {Bits}");
        if (BlockSize is not (32 or 64 or 128 or 256 or 512 or 1024 or 2048 or 4096))
            throw new ArgumentException($"invalid 4-bit block size {BlockSize} (bitsandbytes accepts 32..4096, powers of two)");
        if (ComputeDType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"compute dtype must be float32, bfloat16 or float16, got {ComputeDType}");
    }

    /// <summary>The <c>quantization_config</c> entry of config.json, as transformers writes it for bitsandbytes.</summary>
    public JsonObject ToConfig() => new()
    {
        ["_load_in_4bit"] = Bits == 4,
        ["_load_in_8bit"] = Bits == 8,
        ["bnb_4bit_compute_dtype"] = TorchRuntime.DTypeName(ComputeDType),
        ["bnb_4bit_quant_storage"] = "uint8",
        ["bnb_4bit_quant_type"] = QuantCodebooks.Name(QuantType),
        ["bnb_4bit_use_double_quant"] = DoubleQuant,
        ["llm_int8_enable_fp32_cpu_offload"] = false,
        ["llm_int8_has_fp16_weight"] = false,
        ["llm_int8_skip_modules"] = new JsonArray(SkipModules.Select(m => (JsonNode?)m).ToArray()),
        ["llm_int8_threshold"] = 6.0,
        ["load_in_4bit"] = Bits == 4,
        ["load_in_8bit"] = Bits == 8,
        ["quant_method"] = "bitsandbytes",
    };

    public static QuantizationOptions FromConfig(JsonObject config, string source)
    {
        var method = config["quant_method"]?.GetValue<string>();
        if (method is not null && method != "bitsandbytes")
            throw new NotSupportedException($"{source}: quantization method '{method}' is not supported (SharpTune reads bitsandbytes checkpoints)");
        var eightBit = config["load_in_8bit"]?.GetValue<bool>() ?? config["_load_in_8bit"]?.GetValue<bool>() ?? false;
        return new QuantizationOptions
        {
            Bits = eightBit ? 8 : 4,
            QuantType = QuantCodebooks.ParseFourBit(config["bnb_4bit_quant_type"]?.GetValue<string>() ?? "fp4"),
            DoubleQuant = config["bnb_4bit_use_double_quant"]?.GetValue<bool>() ?? false,
            ComputeDType = TorchRuntime.ResolveDType(config["bnb_4bit_compute_dtype"]?.GetValue<string>() ?? "float32"),
            SkipModules = config["llm_int8_skip_modules"] is JsonArray skip ? skip.Select(n => n!.GetValue<string>()).ToList() : ["lm_head"],
        };
    }
}
