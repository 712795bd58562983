using SharpTune.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Every encoder fixture reproduces transformers' outputs on a right-padded batch.</summary>
public class EncoderParityTests(ITestOutputHelper log)
{
    public static TheoryData<string, string> Fixtures => new()
    {
        { "bert-base-model", "BertModel" },
        { "bert-seqcls", "BertForSequenceClassification" },
        { "bert-mlm", "BertForMaskedLM" },
        { "roberta-seqcls", "RobertaForSequenceClassification" },
        { "distilbert-seqcls", "DistilBertForSequenceClassification" },
        { "deberta-v2-seqcls", "DebertaV2ForSequenceClassification" },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Float32MatchesTransformersWithin1e4(string fixture, string className)
    {
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var model = AutoModel.FromPretrained(EncoderFixture.Directory(fixture), out var report);
            Assert.Equal(className, model.GetType().Name);
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            using var output = model.Forward(EncoderFixture.Inputs(reference));
            var errors = EncoderFixture.Errors(output, reference);
            foreach (var (name, error) in errors)
                log.WriteLine($"{fixture} {name}: max abs err {error:E2}");
            Assert.True(errors.Count >= 3, "reference should hold logits or last_hidden_state and both hidden-state ends");
            Assert.All(errors, e => Assert.True(e.Value <= 1e-4, $"{fixture} {e.Key}: max abs err {e.Value:E3} > 1e-4"));
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }

    /// <summary>bf16 keeps 8 mantissa bits: these small models stay within 0.1 of the fp32 reference after
    /// two post-norm layers (measured: BERT ≤ 0.032); a wrong mask or layout would be off by O(1).</summary>
    [Theory]
    [MemberData(nameof(Fixtures))]
    public void BFloat16StaysWithinStatedTolerance(string fixture, string className)
    {
        const double tolerance = 0.1;
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var model = AutoModel.FromPretrained(EncoderFixture.Directory(fixture), dtype: ScalarType.BFloat16);
            Assert.Equal(className, model.GetType().Name);
            using var output = model.Forward(EncoderFixture.Inputs(reference));
            Assert.Equal(ScalarType.BFloat16, output.LastHiddenState.dtype);
            var errors = EncoderFixture.Errors(output, reference);
            foreach (var (name, error) in errors)
                log.WriteLine($"{fixture} bf16 {name}: max abs err {error:E2}");
            Assert.All(errors, e => Assert.True(e.Value <= tolerance, $"{fixture} bf16 {e.Key}: max abs err {e.Value:E3} > {tolerance}"));
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }
}
