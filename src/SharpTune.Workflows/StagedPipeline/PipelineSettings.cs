using System.Text.Json;
using System.Text.Json.Serialization;

namespace SharpTune.StagedPipeline;

/// <summary>
/// Everything a pipeline run depends on. Defaults are seed 001's: 4-bit NF4 with double quantization and bf16
/// compute; LoRA r=8, alpha=16, dropout 0.1 on q_proj and v_proj; 100 training samples, 1 epoch, batch 1 with
/// gradient accumulation 4, lr 5e-5, 10 warmup steps, max_grad_norm 0.3, 8-bit AdamW, max_length 256.
/// Saved in <c>pipeline.json</c>, so a later run on the same output folder (one stage alone, or a resume) uses them.
/// </summary>
public sealed record PipelineSettings
{
    public required string Model { get; init; }
    public required string Data { get; init; }

    // Data.
    public int TrainSamples { get; init; } = 100;
    public int HeldOutSamples { get; init; } = 20;
    public int MaxLength { get; init; } = 256;
    public long Seed { get; init; } = 42;

    // Quantization.
    public int QuantBits { get; init; } = 4;
    public string QuantType { get; init; } = "nf4";
    public bool DoubleQuant { get; init; } = true;
    public string ComputeDType { get; init; } = "bfloat16";

    // LoRA and training.
    public int LoraR { get; init; } = 8;
    public double LoraAlpha { get; init; } = 16;
    public double LoraDropout { get; init; } = 0.1;
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "v_proj"];
    /// <summary>Train the adapter on the quantized base (QLoRA) rather than on the full-precision base.</summary>
    public bool QLora { get; init; }
    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 1;
    public int GradientAccumulationSteps { get; init; } = 4;
    public double LearningRate { get; init; } = 5e-5;
    public int WarmupSteps { get; init; } = 10;
    public double MaxGradNorm { get; init; } = 0.3;
    /// <summary>"adamw8bit" (the seed's 8-bit AdamW: blockwise-quantized moments) or "adamw".</summary>
    public string Optimizer { get; init; } = "adamw8bit";
    /// <summary>Recompute the decoder layers' activations during backward (less memory, same adapter). Not part of the
    /// LoRA stage's fingerprint: it changes memory, not results.</summary>
    public bool GradientCheckpointing { get; init; }

    // Evaluation.
    public int MaxNewTokens { get; init; } = 32;
    public int WarmupRuns { get; init; } = 1;
    public int LatencyRepeats { get; init; } = 5;
    public int SamplePrompts { get; init; } = 3;

    // Export.
    public S3Settings? S3 { get; init; }
    public HubSettings? Hub { get; init; }

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>A stable digest of the given values (settings a stage depends on), to notice when they change.</summary>
    public static string Fingerprint(params object?[] values) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(values, Json)))[..16];
}

/// <summary>Where the export stage uploads (S3 or any S3-compatible server). Credentials are never saved here:
/// they come from options or the standard AWS environment variables at run time.</summary>
public sealed record S3Settings(string Bucket, string Prefix, string? Endpoint, string? Region, bool ForcePathStyle);

/// <summary>The Hugging Face Hub repository the export stage uploads to (token from the environment at run time).</summary>
public sealed record HubSettings(string Repository, string Revision, string Endpoint);
