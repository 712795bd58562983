using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models.Blocks;

/// <summary>
/// The loss of transformers' *ForSequenceClassification heads. <c>problem_type</c> picks it; when null it is
/// inferred as transformers does: one label → regression (MSE), integer labels → single-label (cross-entropy),
/// otherwise multi-label (BCE with logits).
/// </summary>
public static class SequenceClassificationLoss
{
    public const string Regression = "regression";
    public const string SingleLabel = "single_label_classification";
    public const string MultiLabel = "multi_label_classification";

    public static string InferProblemType(string? problemType, int numLabels, Tensor labels) =>
        problemType ?? (numLabels == 1 ? Regression
            : labels.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte ? SingleLabel
            : MultiLabel);

    /// <summary>fp16 logits in fp32 for a loss, as autocast computes losses: fp16 log-probabilities lose precision, and the
    /// loss-scaled gradient (2^16 and up) would not even fit in fp16.</summary>
    public static Tensor LossInput(Tensor logits) => logits.dtype == ScalarType.Float16 ? logits.to(ScalarType.Float32) : logits;

    /// <summary>The loss against <see cref="ModelInputs.Labels"/> with config.json's num_labels and problem_type; null without labels.</summary>
    public static Tensor? Compute(Tensor logits, ModelInputs inputs, PretrainedConfig config) =>
        inputs.Labels is null ? null : Compute(logits, inputs.Labels, config.NumLabels, config.ProblemType);

    /// <summary>Loss of <paramref name="logits"/> [B, numLabels] against <paramref name="labels"/>.</summary>
    public static Tensor Compute(Tensor logits, Tensor labels, int numLabels, string? problemType)
    {
        using var scope = NewDisposeScope();
        logits = LossInput(logits);
        var loss = InferProblemType(problemType, numLabels, labels) switch
        {
            Regression when numLabels == 1 => F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype)),
            Regression => F.mse_loss(logits, labels.to(logits.dtype)),
            SingleLabel => F.cross_entropy(logits.view(-1, numLabels), labels.view(-1).to(ScalarType.Int64)),
            MultiLabel => F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)),
            var other => throw new ArgumentException(
                $"unknown problem_type '{other}' (expected {Regression}, {SingleLabel} or {MultiLabel})"),
        };
        return loss.MoveToOuterDisposeScope();
    }
}
